"""`UniformTaskSampler`: every task with the same probability (Model Garden's)."""
from typing import Mapping

import numpy as np
import tensorflow as tf

from multitask.sampling import base
from multitask.sampling import distribution
from multitask.sampling import validation


class UniformTaskSampler(base.TaskSampler):
    """Samples every task with the same probability, whatever its weight.

    Weights are validated like every sampler's, but otherwise ignored (as in
    Model Garden): a task of weight 0 is still sampled.
    """

    def __init__(self, task_weights: Mapping[str, validation.Number]):
        """Initializes the sampler.

        Args:
          task_weights: Sampling weight per task name; only the names and their
            order are used.

        Raises:
          ValueError: As `TaskSampler`.
        """
        super().__init__(task_weights)
        self._cumulative = distribution.cumulative_float32(np.full(self.num_tasks, 1.0 / self.num_tasks))

    def task_cumulative_distribution(self, global_step: tf.Tensor) -> tf.Tensor:
        """See `TaskSampler.task_cumulative_distribution`; the step is unused."""
        del global_step
        return tf.constant(self._cumulative)
