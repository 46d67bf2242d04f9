"""Losses over partially labelled batches, normalised by the GLOBAL labelled count.

An example may lack a label for a task (the heads say how a missing label is
written: -1 for class ids, NaN for regression targets). Its loss for that task
is left out, and the task's loss is the sum of the labelled entries' losses
divided by the number of labelled entries in the global batch, so that it does
not depend on how the batch is split over replicas.

The library's steps (`Task.train_step`, `training.joint_step.train_step`)
divide every replica's loss by `num_replicas_in_sync` and sum the gradients
over replicas, which is right for losses that are means over equal local
batches. A masked loss is not: its local labelled counts differ. So a replica
returns `num_replicas * local_sum / global_count`; summed over replicas and
divided by `num_replicas`, that is `global_sum / global_count`, the loss one
device would compute on the whole batch, and its mean over replicas (what the
trainers log) is the same number. The global count costs one scalar all-reduce
per task and step. A batch without any labelled entry gives 0, not NaN.
"""
import tensorflow as tf


def global_count(mask) -> tf.Tensor:
    """The number of nonzero entries of `mask` over all replicas in sync, as float32.

    Outside a replica context (e.g. eagerly inside `strategy.scope()`) it is
    the local count.
    """
    count = tf.stop_gradient(tf.reduce_sum(tf.cast(mask, tf.float32)))
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return count


def masked_mean(values, mask) -> tf.Tensor:
    """This replica's share of the mean of `values` over the labelled entries of the global batch.

    Args:
      values: Per-entry losses, any shape; entries where `mask` is 0 must be
        finite (they are left out but would still spread a NaN).
      mask: Same shape as `values`; nonzero where the entry is labelled.

    Returns:
      A float32 scalar: `num_replicas * sum(values * mask) / global_count(mask)`
      in a replica context with several replicas (see the module docstring),
      `sum(values * mask) / count(mask)` otherwise; 0 when nothing is labelled.
    """
    mask = tf.cast(mask, tf.float32)
    total = tf.reduce_sum(tf.cast(values, tf.float32) * mask)
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    return tf.math.divide_no_nan(total * float(replicas), global_count(mask))
