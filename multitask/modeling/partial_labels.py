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

The logged losses (the evaluator's `validation_loss`, the trainers'
`training_loss`) are exact over a whole evaluation or loop, not means of
per-step means: each replica adds its loss to a running mean with the weight
`loss_count(mask)` = `global_count / num_replicas` (`Task.loss_count`). The
weight times the loss is then the replica's `local_sum`, and the running
mean, whose sums Keras adds over replicas when it is read, is
`sum(local_sums) / sum(global_counts)` over all steps. For example, two
replicas and two batches: 1 and 3 labelled entries (losses 4 | 1, 2, 3),
then 0 and 2 (losses - | 5, 7). `masked_mean` gives 2*4/4 = 2 and 2*6/4 = 3,
then 0 and 2*12/2 = 12; with the weights 4/2 = 2 and 2/2 = 1 the mean is
(2*2 + 3*2 + 0*1 + 12*1) / (2 + 2 + 1 + 1) = 22/6, the mean of the six
labelled losses (the mean of the batches' means is (10/4 + 12/2) / 2 = 4.25).
The weight costs a second scalar all-reduce per task and step.
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


def loss_count(mask) -> tf.Tensor:
    """The weight of this replica's `masked_mean(values, mask)` in a mean over steps: `global_count / num_replicas`.

    `masked_mean` returns `num_replicas * local_sum / global_count` on each
    replica, so this weight times it is the replica's `local_sum`, and the
    weights add up to `global_count` over the replicas (see the module
    docstring). One replica: the labelled count. A float32 scalar.
    """
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    return global_count(mask) / float(replicas)
