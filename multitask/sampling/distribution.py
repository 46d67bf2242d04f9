"""Cumulative distributions over tasks, and the deterministic draw from one.

A sampler describes its choice of task as a cumulative distribution over the
tasks, in task order, whose last entry is exactly 1. `restrict_to_active`
renormalises it over the tasks that may train, and `sample_task_index` draws
a task from it deterministically from `(seed, global_step)`, so every replica
of a distributed run and every restart from a checkpoint picks the same task
at the same step. Everything here but `cumulative_float32` (NumPy, for the
distributions fixed when a sampler is built) works inside `tf.function`.
"""
import numpy as np
import tensorflow as tf


def cumulative_float32(probabilities: np.ndarray) -> np.ndarray:
    """Returns the float32 cumulative sum of `probabilities`, ending in 1 exactly.

    Args:
      probabilities: `[T]` probabilities summing to 1 (up to round-off).

    Returns:
      A `[T]` float32 NumPy array, non-decreasing, capped at 1, last entry 1.
    """
    cumulative = np.minimum(np.cumsum(probabilities, dtype=np.float64), 1.0)
    cumulative[-1] = 1.0
    return cumulative.astype(np.float32)


def power_cumulative(weights, alpha) -> tf.Tensor:
    """The cumulative distribution of `weights ** alpha` over the positive weights, in the graph.

    A softmax of `alpha * log(w)`, so large weights or alphas do not
    overflow; a weight of 0 gets probability 0.

    Args:
      weights: `[T]` non-negative weights (a tensor, variable or list).
      alpha: The exponent (a Python float or a scalar tensor).

    Returns:
      A `[T]` float32 cumulative distribution; all zeros when no weight is
      positive (`restrict_to_active` then reports no mass).
    """
    weights = tf.cast(weights, tf.float32)
    positive = weights > 0
    any_positive = tf.reduce_any(positive)
    logits = tf.where(positive, tf.cast(alpha, tf.float32) * tf.math.log(tf.where(positive, weights, 1.0)),
                      tf.constant(-np.inf, tf.float32))
    # With no positive weight the softmax is NaN; it is replaced by zeros.
    probabilities = tf.where(any_positive, tf.nn.softmax(logits), 0.0)
    cumulative = tf.minimum(tf.math.cumsum(probabilities), 1.0)
    return tf.concat([cumulative[:-1], tf.reshape(tf.cast(any_positive, tf.float32), [1])], axis=0)


@tf.autograph.experimental.do_not_convert
def sample_task_index(
    cumulative_distribution: tf.Tensor, global_step: tf.Tensor, seed: int = 0
) -> tf.Tensor:
    """Draws a task index from a cumulative distribution, deterministically.

    The draw is `u = tf.random.stateless_uniform([], seed=[seed, global_step])`
    and the task is the first index whose cumulative probability exceeds `u`
    (`cumulative[i - 1] <= u < cumulative[i]`), so a task of probability 0 is
    never drawn, not even when `u` equals its cumulative entry. The same `(seed, global_step)`
    always gives the same task: every replica picks the same task at a step,
    and a run resumed from a checkpoint replays the same task sequence. Works
    inside `tf.function` with an int64 `tf.Variable` as the step.

    Args:
      cumulative_distribution: Float tensor of shape [num_tasks], as returned
        by `TaskSampler.task_cumulative_distribution`.
      global_step: The current training step (integer tensor, variable or
        Python int).
      seed: Integer seed of the task sequence.

    Returns:
      An int32 scalar tensor in [0, num_tasks - 1]. The index is clamped to
      num_tasks - 1 in case float round-off left the last cumulative entry
      slightly below the draw.
    """
    cumulative_distribution = tf.convert_to_tensor(cumulative_distribution)
    rng_seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(global_step, tf.int64)])
    draw = tf.random.stateless_uniform([], seed=rng_seed, dtype=cumulative_distribution.dtype)
    index = tf.searchsorted(
        cumulative_distribution, tf.reshape(draw, [1]), side="right", out_type=tf.int32
    )[0]
    last = tf.shape(cumulative_distribution, out_type=tf.int32)[0] - 1
    return tf.minimum(index, last)


@tf.autograph.experimental.do_not_convert
def restrict_to_active(cumulative_distribution: tf.Tensor, active: tf.Tensor):
    """Renormalises a cumulative distribution over the active tasks only.

    Args:
      cumulative_distribution: `[T]` float32, as `task_cumulative_distribution` returns.
      active: `[T]` booleans.

    Returns:
      `(cumulative, any_mass)`: the new cumulative distribution (inactive
      tasks get probability exactly 0, entries from the last task with mass on
      are exactly 1), and whether any active task has probability > 0 (when
      False, no task should be trained).
    """
    cumulative = tf.convert_to_tensor(cumulative_distribution, tf.float32)
    probabilities = cumulative - tf.concat([[0.0], cumulative[:-1]], axis=0)
    probabilities = tf.where(active, tf.maximum(probabilities, 0.0), 0.0)
    total = tf.reduce_sum(probabilities)
    any_mass = total > 0
    restricted = tf.math.cumsum(probabilities) / tf.where(any_mass, total, 1.0)
    positions = tf.range(tf.size(probabilities))
    last = tf.reduce_max(tf.where(probabilities > 0, positions, 0))
    return tf.where(positions >= last, 1.0, tf.minimum(restricted, 1.0)), any_mass
