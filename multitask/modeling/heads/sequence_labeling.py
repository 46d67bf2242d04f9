"""The `sequence_labeling` head: per-token softmax classification."""
from multitask.modeling import registry
from multitask.modeling.heads import classification


@registry.register_head("sequence_labeling")
class SequenceLabelingHead(classification.SoftmaxHead):
    """Per-token classification: logits `[b, T, num_classes]` from a `[b, T, d]` representation.

    Labels are `[b, T]` class ids; -1 marks padding and unlabelled tokens,
    which the loss and the token "accuracy" leave out. The loss is the mean
    over the labelled tokens of the global batch.
    """

    label_rank = 2
