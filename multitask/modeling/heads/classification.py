"""The `classification` head (softmax cross-entropy) and `SoftmaxHead`, its base."""
import keras
import tensorflow as tf

from multitask.modeling import registry
from multitask.modeling.heads import base
from multitask.modeling.heads import labels as labels_lib


class SoftmaxHead(base.Head):
    """Softmax cross-entropy over `num_classes` for labels of rank `label_rank`."""

    label_rank = 1

    def __init__(self, num_classes: int, **kwargs):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes is {num_classes}; a softmax head needs at least 2.")
        self.num_classes = int(num_classes)
        super().__init__(self.num_classes, **kwargs)

    def get_config(self):
        return dict(super().get_config(), num_classes=self.num_classes)

    def label_mask(self, labels):
        return labels_lib.class_ids(labels, self.label_rank)[1]

    def per_example_loss(self, labels, outputs):
        ids, mask = labels_lib.class_ids(labels, self.label_rank)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=labels_lib.float32(outputs))
        return loss * mask

    def build_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def update_metrics(self, metrics, labels, outputs):
        ids, mask = labels_lib.class_ids(labels, self.label_rank)
        for metric in metrics:
            metric.update_state(ids, labels_lib.float32(outputs), sample_weight=mask)


@registry.register_head("classification")
class ClassificationHead(SoftmaxHead):
    """Multi-class classification: logits `[b, num_classes]`, labels `[b]` (-1 = missing).

    Loss: softmax cross-entropy. Metric: "accuracy".
    """
