"""`AnnealingTaskSampler`: proportional sampling whose exponent anneals over epochs.

The annealed sampling of Stickland & Murray, "BERT and PALs" (ICML 2019), as
the paper publishes it: 1-indexed epochs, and no annealing past
`total_steps` (Model Garden's sampler of the same name counts epochs from 0).
"""
from typing import Mapping

import tensorflow as tf

from multitask.sampling import base
from multitask.sampling import distribution
from multitask.sampling import validation

# Alpha of the annealing sampler falls linearly by this much from the first to
# the last epoch (from 1.0 to 0.2), as in Stickland & Murray (ICML 2019).
_ANNEALING_ALPHA_DROP = 0.8


class AnnealingTaskSampler(base.TaskSampler):
    """Proportional sampling whose exponent anneals over training epochs.

    This is the annealed sampling of Stickland & Murray, "BERT and PALs"
    (ICML 2019, http://proceedings.mlr.press/v97/stickland19a.html), as
    published: task i is sampled with probability proportional to
    `task_weight_i ** alpha`, where

        alpha = 1 - 0.8 * (e - 1) / (E - 1),
        e = floor(global_step / steps_per_epoch) + 1  (the current epoch, from 1),
        E = total_steps / steps_per_epoch             (the number of epochs),

    so alpha goes from 1.0 in the first epoch to 0.2 in the last.

    Model Garden's `AnnealingTaskSampler` counts epochs from 0, so its first
    epoch samples with alpha = 1.4 and its last with alpha 0.2 + 0.8 / (E - 1);
    this class follows the paper instead.

    Choices where the paper is silent: with a single epoch (E == 1) there is
    nothing to anneal and alpha stays 1; the epoch is clamped to [1, E], so a
    fractional last epoch and any step past `total_steps` use alpha = 0.2
    rather than extrapolating below it; a task of weight 0 is never sampled.
    """

    uses_weights = True

    def __init__(
        self,
        task_weights: Mapping[str, validation.Number],
        steps_per_epoch: int,
        total_steps: int,
    ):
        """Initializes the sampler.

        Args:
          task_weights: Sampling weight per task name.
          steps_per_epoch: Training steps in one epoch; positive.
          total_steps: Training steps in the whole run; at least
            `steps_per_epoch`.

        Raises:
          ValueError: As `TaskSampler`, or `steps_per_epoch` is not a positive
            integer, or `total_steps` is not an integer >= `steps_per_epoch`.
        """
        super().__init__(task_weights)
        if not validation.is_integer(steps_per_epoch) or steps_per_epoch <= 0:
            raise ValueError(
                f"steps_per_epoch is {steps_per_epoch!r}; it must be a positive integer "
                "(trainer.task_sampler.annealing.steps_per_epoch)."
            )
        if not validation.is_integer(total_steps) or total_steps < steps_per_epoch:
            raise ValueError(
                f"total_steps is {total_steps!r}; it must be an integer >= steps_per_epoch "
                f"({steps_per_epoch}) (trainer.task_sampler.annealing.total_steps)."
            )
        self._steps_per_epoch = int(steps_per_epoch)
        self._total_steps = int(total_steps)
        self._total_epochs = self._total_steps / self._steps_per_epoch

    @property
    def steps_per_epoch(self) -> int:
        """Training steps in one epoch."""
        return self._steps_per_epoch

    @property
    def total_steps(self) -> int:
        """Training steps in the whole run."""
        return self._total_steps

    def annealed_alpha(self, global_step: tf.Tensor) -> tf.Tensor:
        """Returns the float32 scalar exponent used at `global_step`.

        Args:
          global_step: The current training step (an integer tensor, variable
            or Python int).

        Returns:
          `1 - 0.8 * (e - 1) / (E - 1)` for the current 1-indexed epoch `e`
          clamped to [1, E], or 1 when E == 1.
        """
        if self._total_epochs == 1:
            return tf.constant(1.0, tf.float32)
        step = tf.cast(global_step, tf.int64)
        epoch = tf.cast(tf.math.floordiv(step, self._steps_per_epoch) + 1, tf.float32)
        epoch = tf.clip_by_value(epoch, 1.0, self._total_epochs)
        progress = (epoch - 1.0) / (self._total_epochs - 1.0)
        return 1.0 - _ANNEALING_ALPHA_DROP * progress

    def task_cumulative_distribution(self, global_step: tf.Tensor, weights=None) -> tf.Tensor:
        """See `TaskSampler.task_cumulative_distribution`.

        `weights`, a `[T]` float tensor, replaces the constructor's weights
        (all zeros when none is positive).
        """
        if weights is None:
            weights = tf.constant(self._weight_array, tf.float32)
        return distribution.power_cumulative(weights, self.annealed_alpha(global_step))
