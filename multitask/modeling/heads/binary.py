"""The `binary` head (one sigmoid logit) and `SigmoidHead`, its base."""
import keras
import tensorflow as tf

from multitask.modeling import registry
from multitask.modeling.heads import base
from multitask.modeling.heads import labels as labels_lib


class SigmoidHead(base.Head):
    """Sigmoid cross-entropy per output unit; metrics "auc" (micro) and "accuracy"."""

    def _targets(self, labels, outputs):
        return labels_lib.binary_targets(labels, tf.shape(outputs))

    def label_mask(self, labels):
        labels = labels_lib.float32(labels)
        return labels_lib.float32(tf.logical_and(tf.logical_not(tf.math.is_nan(labels)), labels >= 0.0))

    def per_example_loss(self, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=labels_lib.float32(outputs))
        return tf.reshape(loss * mask, tf.shape(self.label_mask(labels)))

    def build_metrics(self):
        return [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]

    def update_metrics(self, metrics, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        probabilities = tf.sigmoid(labels_lib.float32(outputs))
        for metric in metrics:
            metric.update_state(targets, probabilities, sample_weight=mask)


@registry.register_head("binary")
class BinaryHead(SigmoidHead):
    """Binary classification: one logit `[b, 1]`, labels 0/1 `[b]` or `[b, 1]` (-1 or NaN = missing).

    Loss: sigmoid cross-entropy. Metrics: "auc", "accuracy" (threshold 0.5).
    """

    def __init__(self, **kwargs):
        super().__init__(1, **kwargs)
