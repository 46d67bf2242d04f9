"""Deterministic task schedules: `RoundRobinTaskSampler`, `EpochShuffledTaskSampler`.

Not in Model Garden. Instead of drawing a task from a distribution, these
override `TaskSampler.task_index` to follow a fixed order: tasks in turn, or
every batch of every task once per epoch in a shuffled order. Both depend
only on `(seed, global_step)`, so a resumed run replays the same order, and
both give the steps of a disabled task to the active ones.
"""
from typing import Mapping

import numpy as np
import tensorflow as tf

from multitask.sampling import base
from multitask.sampling import distribution
from multitask.sampling import validation


def _nth_active(active: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """The index of the `(n mod #active)`-th active task (0 when none is active)."""
    positions = tf.cast(tf.where(active)[:, 0], tf.int32)
    count = tf.size(positions)
    return tf.cond(count > 0, lambda: tf.gather(positions, tf.math.floormod(tf.cast(n, tf.int32), count)),
                   lambda: tf.constant(0, tf.int32))


class RoundRobinTaskSampler(base.TaskSampler):
    """Visits the tasks in order, one per step: 0, 1, ..., T-1, 0, 1, ...

    The weights are ignored. With disabled tasks, it cycles over the active
    ones (the `(step mod #active)`-th active task).
    """

    def task_cumulative_distribution(self, global_step: tf.Tensor) -> tf.Tensor:
        """A one-hot cumulative distribution on task `global_step mod T`."""
        index = tf.math.floormod(tf.cast(global_step, tf.int32), self.num_tasks)
        return tf.cast(tf.range(self.num_tasks) >= index, tf.float32)

    def task_index(self, global_step, seed, active, weights=None):
        """See `TaskSampler.task_index`; the seed and weights are unused."""
        del seed, weights
        active = tf.convert_to_tensor(active)
        return _nth_active(active, global_step), tf.reduce_any(active)


class EpochShuffledTaskSampler(base.TaskSampler):
    """Every batch of every task once per epoch, in a shuffled order (Snorkel's default).

    An epoch is `N = sum(batches_per_epoch)` steps; within epoch e the steps
    follow a permutation of `[0] * n_0 + [1] * n_1 + ...` drawn statelessly
    from `(seed, e)`, so a resumed run replays the same order. With task
    datasets of exactly `n_i` batches per epoch, every batch is trained on once
    per epoch. A disabled task's steps go to the active tasks in round-robin
    order (so the epoch still has N steps).
    """

    def __init__(self, batches_per_epoch: Mapping[str, validation.Number]):
        """Initializes the sampler.

        Args:
          batches_per_epoch: Batches in one epoch of each task's data, in task
            order; positive integers.

        Raises:
          ValueError: A count is not a positive integer.
        """
        for name, count in batches_per_epoch.items():
            if not validation.is_integer(count) or count <= 0:
                raise ValueError(
                    f"batches_per_epoch[{name!r}] is {count!r}; it must be a positive integer "
                    "(trainer.task_sampler.epoch_shuffled.batches_per_epoch)."
                )
        super().__init__(batches_per_epoch)
        counts = self._weight_array.astype(np.int64)
        self._slots = tf.constant(np.repeat(np.arange(self.num_tasks), counts).astype(np.int32))
        self._epoch_steps = int(counts.sum())

    @property
    def epoch_steps(self) -> int:
        """Steps in one epoch: the sum of the batches per epoch."""
        return self._epoch_steps

    def epoch_order(self, epoch, seed: int = 0) -> tf.Tensor:
        """The `[N]` task indices of epoch `epoch`'s steps.

        Args:
          epoch: The 0-indexed epoch (an integer or integer tensor).
          seed: The sampling seed.

        Returns:
          An int32 `[N]` tensor: a permutation of `[0] * n_0 + [1] * n_1 + ...`
          that depends only on `(seed, epoch)`.
        """
        keys = tf.random.stateless_uniform(
            [self._epoch_steps], seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
        )
        return tf.gather(self._slots, tf.argsort(keys, stable=True))

    def task_cumulative_distribution(self, global_step: tf.Tensor) -> tf.Tensor:
        """The expected share of each task in an epoch (n_i / N), cumulated."""
        del global_step
        return tf.constant(distribution.cumulative_float32(self._weight_array / self._weight_array.sum()))

    def task_index(self, global_step, seed, active, weights=None):
        """See `TaskSampler.task_index`; the weights are unused."""
        del weights
        step = tf.cast(global_step, tf.int64)
        order = self.epoch_order(step // self._epoch_steps, seed)
        index = order[step % self._epoch_steps]
        active = tf.convert_to_tensor(active)
        index = tf.where(tf.gather(active, index), index, _nth_active(active, global_step))
        return index, tf.reduce_any(active)
