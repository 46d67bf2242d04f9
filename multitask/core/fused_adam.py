"""Keras 3 Adam and AdamW whose per-variable update is TensorFlow's fused Adam kernel.

Keras 3's `Adam.update_step` is written in backend-neutral ops: 28 graph ops
per variable per step (casts, powers, the two moment updates, the variable
update), each one an op the executor schedules. tf_keras (and so
Model Garden's trainers) runs one fused `ResourceApplyAdam` op per variable,
which on small and medium models is the difference between a Keras 3 loop and
a tf_keras one. `FusedAdam` and `FusedAdamW` are the Keras 3 classes with the
same arguments, slots (`momentum`, `velocity`), config and checkpoints, whose
`update_step` calls that kernel instead; anything the kernel does not do
(AMSGrad, sparse `IndexedSlices` gradients, dtypes other than float32 /
float64) goes through Keras 3's own update. Weight decay, gradient clipping,
EMA, gradient accumulation and loss scaling are the Keras base class's and
work as with `keras.optimizers.Adam`.

The kernel computes the same update as Keras 3:
`lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
`m = beta_1 * m + (1 - beta_1) * g`, `v = beta_2 * v + (1 - beta_2) * g^2`,
`var -= lr_t * m / (sqrt(v) + epsilon)`, equal up to float rounding.
"""
import keras
import tensorflow as tf

_FUSED_DTYPES = (tf.float32, tf.float64)


class _FusedAdamUpdate:
    """Replaces Adam's `update_step` with one `ResourceApplyAdam` op per variable."""

    def update_step(self, gradient, variable, learning_rate):
        """Updates `variable` (a `tf.Variable`) from `gradient`."""
        if (self.amsgrad or isinstance(gradient, tf.IndexedSlices)
                or tf.as_dtype(variable.dtype) not in _FUSED_DTYPES):
            return super().update_step(gradient, variable, learning_rate)
        dtype = tf.as_dtype(variable.dtype)
        index = self._get_variable_index(variable)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable(package="multitask")
class FusedAdam(_FusedAdamUpdate, keras.optimizers.Adam):
    """`keras.optimizers.Adam` stepping with TensorFlow's fused Adam kernel."""


@keras.saving.register_keras_serializable(package="multitask")
class FusedAdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` stepping with TensorFlow's fused Adam kernel."""
