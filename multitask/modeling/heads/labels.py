"""Reading labels with missing entries: float32 casts, class ids, 0/1 targets and their masks."""
import tensorflow as tf


def float32(x) -> tf.Tensor:
    """`x` cast to float32 (losses are computed in float32, also under mixed precision)."""
    return tf.cast(x, tf.float32)


def squeeze_last(x, rank: int) -> tf.Tensor:
    """Drops a trailing axis of size 1 when `x` has rank `rank + 1`."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank == rank + 1 and x.shape[-1] == 1:
        return tf.squeeze(x, axis=-1)
    return x


def class_ids(labels, rank: int):
    """`(ids with missing ones set to 0, mask)` of integer class labels; negative = missing."""
    labels = tf.cast(squeeze_last(labels, rank), tf.int32)
    mask = labels >= 0
    return tf.where(mask, labels, tf.zeros_like(labels)), float32(mask)


def binary_targets(labels, shape):
    """`(0/1 float targets with missing ones set to 0, mask)`; negative or NaN = missing."""
    labels = tf.reshape(float32(labels), shape)
    mask = tf.logical_and(tf.logical_not(tf.math.is_nan(labels)), labels >= 0.0)
    return tf.where(mask, labels, tf.zeros_like(labels)), float32(mask)
