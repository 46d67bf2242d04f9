"""The `regression` head: MSE or Huber loss per labelled target."""
import keras
import tensorflow as tf

from multitask.modeling import registry
from multitask.modeling.heads import base
from multitask.modeling.heads import labels as labels_lib

REGRESSION_LOSSES = ("mse", "huber")


@registry.register_head("regression")
class RegressionHead(base.Head):
    """Regression of `units` targets; labels `[b]` (units=1) or `[b, units]`, NaN = missing.

    Loss: "mse" (squared error) or "huber" (with `delta`), per labelled target.
    Metrics: "mae" and "rmse".
    """

    def __init__(self, units: int = 1, loss: str = "mse", delta: float = 1.0, **kwargs):
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"regression head: loss is {loss!r}; allowed: {', '.join(REGRESSION_LOSSES)}.")
        self.units = int(units)
        self.loss_type = loss
        self.delta = float(delta)
        super().__init__(self.units, **kwargs)

    def get_config(self):
        return dict(super().get_config(), units=self.units, loss=self.loss_type, delta=self.delta)

    def _targets(self, labels, outputs):
        labels = tf.reshape(labels_lib.float32(labels), tf.shape(outputs))
        mask = tf.logical_not(tf.math.is_nan(labels))
        return tf.where(mask, labels, tf.zeros_like(labels)), labels_lib.float32(mask)

    def label_mask(self, labels):
        labels = labels_lib.float32(labels)
        if self.units == 1:
            labels = tf.reshape(labels, [-1, 1])
        return labels_lib.float32(tf.logical_not(tf.math.is_nan(labels)))

    def per_example_loss(self, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        error = labels_lib.float32(outputs) - targets
        if self.loss_type == "mse":
            loss = tf.square(error)
        else:
            absolute = tf.abs(error)
            quadratic = tf.minimum(absolute, self.delta)
            loss = 0.5 * tf.square(quadratic) + self.delta * (absolute - quadratic)
        return loss * mask

    def build_metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")]

    def update_metrics(self, metrics, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        for metric in metrics:
            metric.update_state(targets, labels_lib.float32(outputs), sample_weight=mask)
