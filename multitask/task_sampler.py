"""Task samplers: which task the interleaving trainer trains at each step.

This is where Model Garden users look: the names mirror
`official.modeling.multitask.task_sampler` (`TaskSampler`,
`UniformTaskSampler`, `ProportionalTaskSampler`, `AnnealingTaskSampler` and
`get_task_sampler(config, task_weights)`). The module holds the factory and
re-exports the samplers, which live one concept per module in
`multitask.sampling` (the `TaskSampler` base there too, so that the samplers
subclassing it need not import this module, which imports them).

A `TaskSampler` turns the tasks' sampling weights (and, for some samplers, the
training progress) into a cumulative distribution over the tasks, in the order
of the `task_weights` dict. `sample_task_index` draws one task index from such
a distribution, deterministically from `(seed, global_step)`, so every replica
of a distributed run and every restart from a checkpoint picks the same task
at the same step; `restrict_to_active` renormalises a distribution over the
tasks that may train.

Beyond Model Garden: `TemperatureTaskSampler` (p_i ∝ n_i^(1/T)), and two
deterministic schedules, `RoundRobinTaskSampler` and
`EpochShuffledTaskSampler`, which override `task_index` (how the trainer
picks the task of a step, given the active tasks). Differences from Model
Garden, each written down where it applies:

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
from typing import Mapping

from multitask import configs
from multitask.sampling.annealing import AnnealingTaskSampler
from multitask.sampling.base import TaskSampler
from multitask.sampling.distribution import restrict_to_active
from multitask.sampling.distribution import sample_task_index
from multitask.sampling.proportional import ProportionalTaskSampler
from multitask.sampling.proportional import TemperatureTaskSampler
from multitask.sampling.schedules import EpochShuffledTaskSampler
from multitask.sampling.schedules import RoundRobinTaskSampler
from multitask.sampling.uniform import UniformTaskSampler
from multitask.sampling.validation import Number

__all__ = [
    "AnnealingTaskSampler",
    "EpochShuffledTaskSampler",
    "Number",
    "ProportionalTaskSampler",
    "RoundRobinTaskSampler",
    "TaskSampler",
    "TemperatureTaskSampler",
    "UniformTaskSampler",
    "get_task_sampler",
    "restrict_to_active",
    "sample_task_index",
]


def _sizes_by_task(config: configs.TaskSamplingConfig, field: str, task_weights: Mapping[str, Number]):
    """Pairs the per-task counts of `config.<type>.<field>` with the task names.

    Args:
      config: The trainer's `task_sampler` config.
      field: The field of the selected sampler's config that lists one count
        per task (`dataset_sizes` or `batches_per_epoch`).
      task_weights: Sampling weight per task name, in task order.

    Returns:
      A dict from task name to its count, in task order.

    Raises:
      ValueError: The field does not have exactly one entry per task.
    """
    sizes = tuple(getattr(config.get(), field) or ())
    if len(sizes) != len(task_weights):
        raise ValueError(
            f"trainer.task_sampler.{config.type}.{field} has {len(sizes)} entries; it needs one "
            f"per task, in task order ({', '.join(task_weights)})."
        )
    return dict(zip(task_weights, sizes))


def get_task_sampler(config: configs.TaskSamplingConfig, task_weights: Mapping[str, Number]) -> TaskSampler:
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
    if config.type == "epoch_shuffled":
        return EpochShuffledTaskSampler(_sizes_by_task(config, "batches_per_epoch", task_weights))
    if config.type == "temperature":
        return TemperatureTaskSampler(
            _sizes_by_task(config, "dataset_sizes", task_weights), temperature=config.temperature.temperature
        )
    if config.type == "proportional":
        return ProportionalTaskSampler(task_weights, alpha=config.proportional.alpha)
    return AnnealingTaskSampler(
        task_weights,
        steps_per_epoch=config.annealing.steps_per_epoch,
        total_steps=config.annealing.total_steps,
    )
