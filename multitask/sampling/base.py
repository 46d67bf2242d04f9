"""`TaskSampler`: the contract every task sampler of the interleaving trainer follows.

A sampler holds the tasks' sampling weights, in task order, and turns them
(and, for some samplers, the training progress) into a cumulative
distribution over the tasks. `task_index` is what the interleaving trainer
calls each step: it restricts that distribution to the active tasks and
draws one task from it deterministically (see `distribution`). The
deterministic schedules override `task_index` instead.
"""
import abc
from typing import Dict, Mapping

import numpy as np
import tensorflow as tf

from multitask.sampling import distribution
from multitask.sampling import validation


class TaskSampler(tf.Module, abc.ABC):
    """Computes the distribution from which the interleaving trainer samples tasks.

    Subclasses implement `task_cumulative_distribution`, which must work
    eagerly and inside `tf.function` with a tensor (e.g. a `tf.Variable`)
    global step. Those whose distribution depends on the weights set
    `uses_weights` and accept `task_cumulative_distribution(global_step,
    weights)` with a `[T]` float tensor of weights replacing the Python ones.
    """

    uses_weights = False

    def __init__(self, task_weights: Mapping[str, validation.Number]):
        """Initializes the sampler.

        Args:
          task_weights: Sampling weight per task name (a task routine's
            `task_weight`); the dict's order is the order of the tasks in the
            distribution.

        Raises:
          ValueError: `task_weights` is empty, has a negative or non-finite
            weight, or has only zero weights.
        """
        super().__init__()
        weights = validation.validated_weights(task_weights)
        self._task_weights = weights
        self._weight_array = np.array(list(weights.values()), dtype=np.float64)

    @property
    def task_weights(self) -> Dict[str, float]:
        """A copy of the task weights, in task order."""
        return dict(self._task_weights)

    @property
    def num_tasks(self) -> int:
        """The number of tasks."""
        return len(self._weight_array)

    @abc.abstractmethod
    def task_cumulative_distribution(self, global_step: tf.Tensor) -> tf.Tensor:
        """Computes the cumulative distribution from which to sample a task.

        Args:
          global_step: The current training step (an integer tensor, variable
            or Python int).

        Returns:
          A float32 tensor of shape [num_tasks]: the cumulative sampling
          distribution over the tasks in `task_weights` order, non-decreasing,
          with last entry 1.
        """

    def task_index(self, global_step: tf.Tensor, seed: int, active: tf.Tensor, weights=None):
        """The task the interleaving trainer trains at `global_step`.

        Samples from `task_cumulative_distribution` restricted to the
        `active` tasks (`restrict_to_active`) with `sample_task_index`.

        Args:
          global_step: The current training step.
          seed: The sampling seed.
          active: `[T]` booleans: the tasks that may be picked.
          weights: Optional `[T]` float tensor: the current task weights,
            used instead of the constructor's when `uses_weights` (ignored
            otherwise). When every active task's weight is 0, no task can be
            trained.

        Returns:
          `(index, any_task)`: an int32 task index, and whether any task can
          be trained (when False the step trains nothing).
        """
        if weights is not None and self.uses_weights:
            cumulative = self.task_cumulative_distribution(global_step, weights)
        else:
            cumulative = self.task_cumulative_distribution(global_step)
        cumulative, any_mass = distribution.restrict_to_active(cumulative, active)
        return distribution.sample_task_index(cumulative, global_step, seed), any_mass
