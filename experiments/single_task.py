"""Single-task baselines: one task of a multi-task experiment, trained alone.

`alone_config(params, task_name)` turns a `MultiTaskExperimentConfig` into a
Model Garden `ExperimentConfig` of one of its tasks: the routine's own task
config (so the same data and the model its Task builds), the trainer's
optimizer, step budget and loop settings, and the same runtime. It trains
through the launcher like any single-task experiment (its own `train_step`,
one batch of the task per step), so a joint run and its `_alone` runs take
the same number of steps on the same batches of each task.

`register_alone_experiments(experiment, factory, task_names)` registers
`<experiment>_<task>_alone` for each task, e.g.
`python -m multitask.train --experiment=multi_digits_left_alone`.
"""
from typing import Callable, Sequence

from official.core import config_definitions as cfg
from official.core import exp_factory

from multitask import configs

SUFFIX = "_alone"


def alone_config(params: configs.MultiTaskExperimentConfig, task_name: str) -> cfg.ExperimentConfig:
    """Returns the single-task experiment of task `task_name` of `params`.

    Args:
      params: A multi-task experiment.
      task_name: The name of one of its task routines.

    Returns:
      An `ExperimentConfig` with that routine's task config, the trainer
      settings `cfg.TrainerConfig` has (optimizer, train_steps, intervals,
      ...) and `params.runtime`.

    Raises:
      ValueError: No routine is named `task_name`.
    """
    routines = {routine.resolved_name(): routine for routine in params.task.task_routines}
    if task_name not in routines:
        raise ValueError(f"task is {task_name!r}; the experiment's tasks: {', '.join(routines)}.")
    trainer = cfg.TrainerConfig()
    shared = set(trainer.as_dict())
    trainer.override({k: v for k, v in params.trainer.as_dict().items() if k in shared}, is_strict=True)
    task_config = routines[task_name].task_config.replace(name=task_name)
    return cfg.ExperimentConfig(task=task_config, trainer=trainer, runtime=params.runtime)


def alone_name(experiment: str, task_name: str) -> str:
    """The registered name of task `task_name` of `experiment` trained alone."""
    return f"{experiment}_{task_name}{SUFFIX}"


def register_alone_experiments(
    experiment: str, factory: Callable[[], configs.MultiTaskExperimentConfig], task_names: Sequence[str]
) -> None:
    """Registers `alone_name(experiment, task)` for each task, built from `factory()`.

    Args:
      experiment: The multi-task experiment's registered name.
      factory: Returns its config.
      task_names: The names of its task routines.
    """
    for task_name in task_names:
        def alone(task_name=task_name):
            return alone_config(factory(), task_name)

        alone.__doc__ = f"The {task_name!r} task of {experiment!r} trained alone, same trainer settings."
        exp_factory.register_config_factory(alone_name(experiment, task_name))(alone)
