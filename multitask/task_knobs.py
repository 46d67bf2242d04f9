"""A task's knobs by its name: `task.tasks.<name>.<field>` merges into that task's routine.

`task.task_routines` is a list, and a hyperparams override replaces a list
whole unless it restates every element, so setting one task's `loss_weight`,
`enabled` or `early_stopping` used to mean restating every routine. Under
`task.tasks` a mapping keyed by task name (a routine's `resolved_name()`)
merges into the routine of that name instead, from a `--config_file` YAML

    task:
      tasks:
        circle: {loss_weight: 2.0, early_stopping: {metric: accuracy, patience: 2}}

or from `--params_override=task.tasks.circle.loss_weight=2`, or in Python
through `params.override({"task": {"tasks": {"circle": {...}}}})`. Any field
of `TaskRoutine` can be set this way, nested ones included
(`task.tasks.circle.task_config.train_data.global_batch_size=16`). In one
override `task.tasks` applies after `task.task_routines` (a restated list is
the one the names refer to); several overrides apply in the order given.
`task.tasks` is not a field: the merged routines are what the config holds,
so a run's params.yaml lists the routines with the knobs set.

This module has no TensorFlow dependency: `multitask.configs` imports it.
"""
from typing import Any, Dict, Mapping, Sequence

from official.modeling import hyperparams

TASKS_KEY = "tasks"


def routines_by_name(routines: Sequence[hyperparams.Config]) -> Dict[str, hyperparams.Config]:
    """The routines by `resolved_name()`, in their order (unnamed ones left out)."""
    return {routine.resolved_name(): routine for routine in routines if routine.resolved_name()}


def unknown_task_message(name: str, routines: Sequence[hyperparams.Config], field: str) -> str:
    """The one-line error for a task name that no routine has."""
    known = ", ".join(routines_by_name(routines)) or "none (task.task_routines is empty)"
    return f"{field}: unknown task {name!r}; known tasks: {known}."


def merge(routines: Sequence[hyperparams.Config], by_name: Mapping[str, Any], field: str = "task.tasks") -> None:
    """Overrides each named routine's fields with `by_name[name]`, strictly.

    Args:
      routines: The `TaskRoutine`s (changed in place).
      by_name: `{task_name: {field: value}}`.
      field: The config path of `by_name`, for error messages.

    Raises:
      KeyError: An unknown task name, or a key `TaskRoutine` does not have.
      ValueError: `by_name` or one of its values is not a mapping.
    """
    if not isinstance(by_name, Mapping):
        raise ValueError(f"{field} must map task names to their fields, e.g. {{circle: {{loss_weight: 2}}}}; "
                         f"got {by_name!r}.")
    named = routines_by_name(routines)
    for name, knobs in by_name.items():
        if name not in named:
            raise KeyError(unknown_task_message(name, routines, field))
        fields = sorted(named[name].as_dict())
        if not isinstance(knobs, Mapping):
            raise ValueError(f"{field}.{name} must be a mapping of task routine fields ({', '.join(fields)}); "
                             f"got {knobs!r}.")
        unknown = [key for key in knobs if key not in fields]
        if unknown:
            raise KeyError(f"{field}.{name}: unknown key {unknown[0]!r}; allowed: {', '.join(fields)}.")
        named[name].override(dict(knobs), is_strict=True)
