"""The loss and metric shared by the experiments' classification tasks."""
import keras
import tensorflow as tf

from multitask.core import base_task


class SparseClassificationTask(base_task.Task):
    """A Task whose model returns class logits and whose labels are class ids.

    Loss: mean sparse softmax cross-entropy (in float32, also under a mixed
    precision policy). Metric: sparse categorical accuracy named "accuracy".
    """

    def build_losses(self, labels, model_outputs, aux_losses=None) -> tf.Tensor:
        """Mean sparse softmax cross-entropy of the logits."""
        loss = keras.losses.sparse_categorical_crossentropy(labels, model_outputs, from_logits=True)
        return tf.reduce_mean(tf.cast(loss, tf.float32))

    def build_metrics(self, training: bool = True):
        """Returns `[SparseCategoricalAccuracy("accuracy")]`."""
        del training
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
