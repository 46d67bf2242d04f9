"""Samplers proportional to a power of the weights: `ProportionalTaskSampler`, `TemperatureTaskSampler`.

Task i is sampled with probability proportional to `w_i ** alpha`: the
sampling weights with a chosen `alpha` (Model Garden's proportional sampler),
or the dataset sizes with `alpha = 1 / T` (temperature sampling). A task of
weight 0 is never sampled, whatever `alpha` is (Model Garden gives it mass
when alpha is 0).
"""
import math
from typing import Mapping

import numpy as np
import tensorflow as tf

from multitask.sampling import base
from multitask.sampling import distribution
from multitask.sampling import validation


class ProportionalTaskSampler(base.TaskSampler):
    """Samples task i with probability proportional to `task_weight_i ** alpha`.

    `alpha` = 1 samples in proportion to the weights, 0 uniformly over the
    tasks of positive weight, and values between flatten the distribution. A
    task of weight 0 is never sampled, whatever `alpha` is.
    """

    uses_weights = True

    def __init__(self, task_weights: Mapping[str, validation.Number], alpha: float = 1.0):
        """Initializes the sampler.

        Args:
          task_weights: Sampling weight per task name.
          alpha: The exponent applied to the weights.

        Raises:
          ValueError: As `TaskSampler`, or `alpha` is not a finite number.
        """
        super().__init__(task_weights)
        alpha = float(alpha)
        if not math.isfinite(alpha):
            raise ValueError(f"alpha is {alpha!r}; it must be a finite number.")
        self._alpha = alpha
        positive = self._weight_array > 0
        # Softmax of alpha * log(w) over the positive weights: w ** alpha,
        # normalised without overflow for large weights or alphas.
        logits = np.full(self.num_tasks, -np.inf)
        logits[positive] = alpha * np.log(self._weight_array[positive])
        sizes = np.exp(logits - logits[positive].max())
        self._cumulative = distribution.cumulative_float32(sizes / sizes.sum())

    @property
    def alpha(self) -> float:
        """The exponent applied to the weights."""
        return self._alpha

    def task_cumulative_distribution(self, global_step: tf.Tensor, weights=None) -> tf.Tensor:
        """See `TaskSampler.task_cumulative_distribution`; the step is unused.

        `weights`, a `[T]` float tensor, replaces the constructor's weights
        (all zeros when none is positive).
        """
        del global_step
        if weights is None:
            return tf.constant(self._cumulative)
        return distribution.power_cumulative(weights, self._alpha)


class TemperatureTaskSampler(ProportionalTaskSampler):
    """Temperature sampling: p_i proportional to n_i ** (1 / T).

    `n_i` is task i's dataset size. T = 1 samples in proportion to the sizes,
    large T approaches uniform sampling (Arivazhagan et al. 2019; the T of
    multilingual models). The sampling weights are not used.
    """

    uses_weights = False

    def __init__(self, dataset_sizes: Mapping[str, validation.Number], temperature: float = 1.0):
        """Initializes the sampler.

        Args:
          dataset_sizes: Examples (or batches) per task, in task order.
          temperature: T > 0.

        Raises:
          ValueError: As `TaskSampler`, or T is not a positive finite number.
        """
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(
                f"temperature is {temperature!r}; it must be a finite number > 0 "
                "(trainer.task_sampler.temperature.temperature)."
            )
        super().__init__(dataset_sizes, alpha=1.0 / temperature)
        self._temperature = temperature

    @property
    def temperature(self) -> float:
        """The temperature T: the sizes are raised to the power 1 / T."""
        return self._temperature
