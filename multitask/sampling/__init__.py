"""The task samplers of the interleaving trainer, one concept per module.

Users import them from `multitask.task_sampler` (where Model Garden users look),
which also holds the factory `get_task_sampler`. This package is the machinery
under it:

- `validation`: checks the weights and step counts a sampler is given.
- `distribution`: cumulative distributions over tasks, restricting one to the
  active tasks, and the deterministic draw of a task index from one.
- `base`: `TaskSampler`, the contract every sampler follows.
- `uniform`: `UniformTaskSampler`.
- `proportional`: `ProportionalTaskSampler` (weights ** alpha) and
  `TemperatureTaskSampler` (dataset sizes ** (1 / T)).
- `annealing`: `AnnealingTaskSampler` (alpha annealed over epochs).
- `schedules`: the deterministic schedules `RoundRobinTaskSampler` and
  `EpochShuffledTaskSampler`.
"""
