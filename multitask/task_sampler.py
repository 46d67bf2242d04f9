"""Task samplers: which task the interleaving trainer trains at each step.

A `TaskSampler` turns the tasks' sampling weights (and, for some samplers, the
training progress) into a cumulative distribution over the tasks, in the order
of the `task_weights` dict. `sample_task_index` draws one task index from such
a distribution, deterministically from `(seed, global_step)`, so every replica
of a distributed run and every restart from a checkpoint picks the same task
at the same step.

The names mirror Model Garden's `official.modeling.multitask.task_sampler`:
`UniformTaskSampler`, `ProportionalTaskSampler`, `AnnealingTaskSampler` and
`get_task_sampler(config, task_weights)`. Beyond Model Garden:
`TemperatureTaskSampler` (p_i ∝ n_i^(1/T)), and two deterministic schedules,
`RoundRobinTaskSampler` and `EpochShuffledTaskSampler`, which override
`task_index` (how the trainer picks the task of a step, given the active
tasks). Differences from Model Garden, each
written down where it applies:

- inputs are validated up front (empty, negative, non-finite or all-zero
  weights; bad annealing steps) with `ValueError`s naming the bad field;
- a task of weight 0 is never sampled by the proportional and annealing
  samplers, whatever `alpha` is (Model Garden gives it mass when alpha is 0);
- the annealing sampler follows the paper's 1-indexed epochs (see its
  docstring) and stops annealing after `total_steps`;
- the cumulative distribution's last entry is exactly 1;
- the samplers that use the weights (`uses_weights`: proportional and
  annealing) also take them as a tensor (`task_index(..., weights=)`), so the
  interleaving trainer samples with the current values of
  `TaskControl`'s sampling-weight variables and a change needs no retracing.
"""
import abc
import math
from typing import Dict, Mapping, Union

import numpy as np
import tensorflow as tf

from multitask import configs

Number = Union[float, int]

# Alpha of the annealing sampler falls linearly by this much from the first to
# the last epoch (from 1.0 to 0.2), as in Stickland & Murray (ICML 2019).
_ANNEALING_ALPHA_DROP = 0.8


def _validated_weights(task_weights: Mapping[str, Number]) -> Dict[str, float]:
    """Checks the task weights and returns them as an ordered dict of floats.

    Args:
      task_weights: Sampling weight per task name.

    Returns:
      A new dict with the same keys, in the same order, and float values.

    Raises:
      ValueError: `task_weights` is empty, a weight is not a finite number or
        is negative, or all weights are zero.
    """
    if not task_weights:
        raise ValueError("task_weights is empty; a task sampler needs at least one task.")
    weights = {}
    for name, weight in task_weights.items():
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise ValueError(
                f"task_weights[{name!r}] is {weight!r}; it must be a finite number >= 0."
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"task_weights[{name!r}] is {weight!r}; it must be a finite number >= 0."
            )
        weights[name] = value
    if not any(weights.values()):
        raise ValueError(
            f"task_weights are all zero ({weights}); at least one task needs a "
            "positive weight to be sampled."
        )
    return weights


def _cumulative_float32(probabilities: np.ndarray) -> np.ndarray:
    """Returns the float32 cumulative sum of `probabilities`, ending in 1 exactly."""
    cumulative = np.minimum(np.cumsum(probabilities, dtype=np.float64), 1.0)
    cumulative[-1] = 1.0
    return cumulative.astype(np.float32)


def _is_integer(value) -> bool:
    """Whether `value` is an integer (a float with an integral value counts)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and float(value).is_integer()


class TaskSampler(tf.Module, abc.ABC):
    """Computes the distribution from which the interleaving trainer samples tasks.

    Subclasses implement `task_cumulative_distribution`, which must work
    eagerly and inside `tf.function` with a tensor (e.g. a `tf.Variable`)
    global step. Those whose distribution depends on the weights set
    `uses_weights` and accept `task_cumulative_distribution(global_step,
    weights)` with a `[T]` float tensor of weights replacing the Python ones.
    """

    uses_weights = False

    def __init__(self, task_weights: Mapping[str, Number]):
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
        weights = _validated_weights(task_weights)
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
        cumulative, any_mass = restrict_to_active(cumulative, active)
        return sample_task_index(cumulative, global_step, seed), any_mass


class UniformTaskSampler(TaskSampler):
    """Samples every task with the same probability, whatever its weight.

    Weights are validated like every sampler's, but otherwise ignored (as in
    Model Garden): a task of weight 0 is still sampled.
    """

    def __init__(self, task_weights: Mapping[str, Number]):
        """Initializes the sampler.

        Args:
          task_weights: Sampling weight per task name; only the names and their
            order are used.

        Raises:
          ValueError: As `TaskSampler`.
        """
        super().__init__(task_weights)
        self._cumulative = _cumulative_float32(np.full(self.num_tasks, 1.0 / self.num_tasks))

    def task_cumulative_distribution(self, global_step: tf.Tensor) -> tf.Tensor:
        """See `TaskSampler.task_cumulative_distribution`; the step is unused."""
        del global_step
        return tf.constant(self._cumulative)


def _power_cumulative(weights, alpha) -> tf.Tensor:
    """The cumulative distribution of `weights ** alpha` over the positive weights, in the graph.

    A softmax of `alpha * log(w)`, so large weights or alphas do not
    overflow; a weight of 0 gets probability 0. All zeros when no weight is
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


class ProportionalTaskSampler(TaskSampler):
    """Samples task i with probability proportional to `task_weight_i ** alpha`.

    `alpha` = 1 samples in proportion to the weights, 0 uniformly over the
    tasks of positive weight, and values between flatten the distribution. A
    task of weight 0 is never sampled, whatever `alpha` is.
    """

    uses_weights = True

    def __init__(self, task_weights: Mapping[str, Number], alpha: float = 1.0):
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
        self._cumulative = _cumulative_float32(sizes / sizes.sum())

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
        return _power_cumulative(weights, self._alpha)


class AnnealingTaskSampler(TaskSampler):
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
        task_weights: Mapping[str, Number],
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
        if not _is_integer(steps_per_epoch) or steps_per_epoch <= 0:
            raise ValueError(
                f"steps_per_epoch is {steps_per_epoch!r}; it must be a positive integer "
                "(trainer.task_sampler.annealing.steps_per_epoch)."
            )
        if not _is_integer(total_steps) or total_steps < steps_per_epoch:
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
        return _power_cumulative(weights, self.annealed_alpha(global_step))


class TemperatureTaskSampler(ProportionalTaskSampler):
    """Temperature sampling: p_i proportional to n_i ** (1 / T).

    `n_i` is task i's dataset size. T = 1 samples in proportion to the sizes,
    large T approaches uniform sampling (Arivazhagan et al. 2019; the T of
    multilingual models). The sampling weights are not used.
    """

    uses_weights = False

    def __init__(self, dataset_sizes: Mapping[str, Number], temperature: float = 1.0):
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
        return self._temperature


def _nth_active(active: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """The index of the `(n mod #active)`-th active task (0 when none is active)."""
    positions = tf.cast(tf.where(active)[:, 0], tf.int32)
    count = tf.size(positions)
    return tf.cond(count > 0, lambda: tf.gather(positions, tf.math.floormod(tf.cast(n, tf.int32), count)),
                   lambda: tf.constant(0, tf.int32))


class RoundRobinTaskSampler(TaskSampler):
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


class EpochShuffledTaskSampler(TaskSampler):
    """Every batch of every task once per epoch, in a shuffled order (Snorkel's default).

    An epoch is `N = sum(batches_per_epoch)` steps; within epoch e the steps
    follow a permutation of `[0] * n_0 + [1] * n_1 + ...` drawn statelessly
    from `(seed, e)`, so a resumed run replays the same order. With task
    datasets of exactly `n_i` batches per epoch, every batch is trained on once
    per epoch. A disabled task's steps go to the active tasks in round-robin
    order (so the epoch still has N steps).
    """

    def __init__(self, batches_per_epoch: Mapping[str, Number]):
        """Initializes the sampler.

        Args:
          batches_per_epoch: Batches in one epoch of each task's data, in task
            order; positive integers.

        Raises:
          ValueError: A count is not a positive integer.
        """
        for name, count in batches_per_epoch.items():
            if not _is_integer(count) or count <= 0:
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
        """The `[N]` task indices of epoch `epoch`'s steps."""
        keys = tf.random.stateless_uniform(
            [self._epoch_steps], seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
        )
        return tf.gather(self._slots, tf.argsort(keys, stable=True))

    def task_cumulative_distribution(self, global_step: tf.Tensor) -> tf.Tensor:
        """The expected share of each task in an epoch (n_i / N), cumulated."""
        del global_step
        return tf.constant(_cumulative_float32(self._weight_array / self._weight_array.sum()))

    def task_index(self, global_step, seed, active, weights=None):
        """See `TaskSampler.task_index`; the weights are unused."""
        del weights
        step = tf.cast(global_step, tf.int64)
        order = self.epoch_order(step // self._epoch_steps, seed)
        index = order[step % self._epoch_steps]
        active = tf.convert_to_tensor(active)
        index = tf.where(tf.gather(active, index), index, _nth_active(active, global_step))
        return index, tf.reduce_any(active)


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


def get_task_sampler(
    config: configs.TaskSamplingConfig, task_weights: Mapping[str, Number]
) -> TaskSampler:
    """Builds the task sampler that `config` selects.

    Args:
      config: The trainer's `task_sampler` config; `config.type` is one of
        `configs.SAMPLER_TYPES`.
      task_weights: Sampling weight per task name, in task order.

    Returns:
      A `TaskSampler`.

    Raises:
      ValueError: `config.type` is not a known sampler type, or the sampler
        rejects its arguments.
    """
    if config.type not in configs.SAMPLER_TYPES:
        raise ValueError(
            f"trainer.task_sampler.type is {config.type!r}; allowed: "
            f"{', '.join(configs.SAMPLER_TYPES)}."
        )
    if config.type == "uniform":
        return UniformTaskSampler(task_weights)
    if config.type == "round_robin":
        return RoundRobinTaskSampler(task_weights)
    if config.type in ("temperature", "epoch_shuffled"):
        field = "dataset_sizes" if config.type == "temperature" else "batches_per_epoch"
        sizes = tuple(getattr(config.get(), field) or ())
        if len(sizes) != len(task_weights):
            raise ValueError(
                f"trainer.task_sampler.{config.type}.{field} has {len(sizes)} entries; it needs one "
                f"per task, in task order ({', '.join(task_weights)})."
            )
        by_task = dict(zip(task_weights, sizes))
        if config.type == "epoch_shuffled":
            return EpochShuffledTaskSampler(by_task)
        return TemperatureTaskSampler(by_task, temperature=config.temperature.temperature)
    if config.type == "proportional":
        return ProportionalTaskSampler(task_weights, alpha=config.proportional.alpha)
    return AnnealingTaskSampler(
        task_weights,
        steps_per_epoch=config.annealing.steps_per_epoch,
        total_steps=config.annealing.total_steps,
    )
