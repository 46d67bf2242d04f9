"""The `multilabel` head: one sigmoid logit per label, each label may be missing."""
from multitask.modeling import registry
from multitask.modeling.heads import binary


@registry.register_head("multilabel")
class MultiLabelHead(binary.SigmoidHead):
    """Multi-label classification: `num_labels` logits, labels 0/1 `[b, num_labels]`.

    Each label may be missing on its own (-1 or NaN). Loss: sigmoid
    cross-entropy, the mean over labelled (example, label) entries. Metrics:
    "auc" micro-averaged over labels, "accuracy" (threshold 0.5).
    """

    def __init__(self, num_labels: int, **kwargs):
        self.num_labels = int(num_labels)
        super().__init__(self.num_labels, **kwargs)

    def get_config(self):
        return dict(super().get_config(), num_labels=self.num_labels)
