"""MultiTask: the tasks of a multi-task run, their weights and the joint step."""
from typing import Dict, List, Mapping, Optional, Union

import keras
import tensorflow as tf

from official.core import config_definitions
from official.core import task_factory

from multitask import configs
from multitask import task_control
from multitask import weighting
from multitask.core import base_task
from multitask.training import joint_step


def build_task(task_config, name: str, logging_dir: Optional[str] = None) -> base_task.Task:
    """Builds the Task registered for `task_config`'s class.

    Raises:
      ValueError: No Task is registered for the config class.
    """
    try:
        return task_factory.get_task(task_config, logging_dir=logging_dir, name=name)
    except LookupError as error:
        raise ValueError(
            f"Task {name!r}: no Task is registered for config class "
            f"{type(task_config).__name__}; register one with "
            f"@task_factory.register_task_cls({type(task_config).__name__})."
        ) from error


class MultiTask(tf.Module):
    """Holds several `Task`s, their weights and evaluation steps.

    `task_weight` is the loss weight of the joint step and the sampling weight
    of the interleaving trainer, as in Model Garden; `loss_weights` and
    `sampling_weights` set either meaning alone, and the learning-rate
    multipliers scale a task's updates. These knobs, and whether each task is
    active, live in `control` (a `task_control.TaskControl` of variables), so
    they change between training loops without rebuilding anything and are
    saved in the trainer's checkpoint.
    """

    def __init__(
        self,
        tasks: Union[Mapping[str, base_task.Task], List[base_task.Task]],
        task_weights: Optional[Mapping[str, float]] = None,
        task_eval_steps: Optional[Mapping[str, Optional[int]]] = None,
        name: Optional[str] = None,
        loss_weights: Optional[Mapping[str, Optional[float]]] = None,
        sampling_weights: Optional[Mapping[str, Optional[float]]] = None,
        learning_rate_multipliers: Optional[Mapping[str, Optional[float]]] = None,
        loss_weight_schedules: Optional[Mapping[str, object]] = None,
        disabled_tasks=(),
        active_steps: Optional[Mapping[str, tuple]] = None,
    ):
        """Initializes the MultiTask.

        Args:
          tasks: A list of Tasks (keyed by `task.name`) or a `{name: Task}` dict.
          task_weights: `{name: weight}`; missing tasks weigh 1.0.
          task_eval_steps: `{name: steps}` for evaluation; None means all.
          name: The module name.
          loss_weights: `{name: weight}` of the joint step; missing (or None)
            ones fall back to the task weight.
          sampling_weights: `{name: weight}` of the interleaving sampler;
            missing ones fall back to the task weight.
          learning_rate_multipliers: `{name: multiplier}`; missing ones are 1
            (not the task weight: Model Garden's task_weight never changes the
            learning rate).
          loss_weight_schedules: `{name: configs.LossWeightScheduleConfig}`; the
            loss weight is multiplied by the schedule's factor at the global step.
          disabled_tasks: Names of the tasks that start disabled.
          active_steps: `{name: (start_step, stop_step or None)}`: the task
            trains only while `start_step <= global_step < stop_step`.

        Raises:
          ValueError: Duplicated task names, an empty or mistyped `tasks`, a
            weight or eval step for a task that does not exist, a negative
            knob or a malformed schedule.
        """
        super().__init__(name=name)
        if isinstance(tasks, Mapping):
            task_map = dict(tasks)
        elif isinstance(tasks, (list, tuple)):
            task_map = {}
            for task in tasks:
                if task.name in task_map:
                    raise ValueError(
                        f"Duplicated task name {task.name!r}: every task in a MultiTask "
                        "needs its own name."
                    )
                task_map[task.name] = task
        else:
            raise ValueError(f"tasks must be a list or a dict of Task, got {type(tasks).__name__}.")
        if not task_map:
            raise ValueError("A MultiTask needs at least one task.")
        for label, given in (("task_weights", task_weights), ("task_eval_steps", task_eval_steps),
                             ("loss_weights", loss_weights), ("sampling_weights", sampling_weights),
                             ("learning_rate_multipliers", learning_rate_multipliers),
                             ("loss_weight_schedules", loss_weight_schedules),
                             ("active_steps", active_steps)):
            unknown = sorted(set(given or {}) - set(task_map))
            if unknown:
                raise ValueError(
                    f"{label} names unknown tasks {unknown}; tasks: {', '.join(task_map)}."
                )
        self._tasks = task_map
        weights = task_weights or {}
        self._task_weights = {
            name: 1.0 if weights.get(name) is None else float(weights[name]) for name in task_map
        }
        self.task_eval_steps = dict(task_eval_steps or {})

        def resolved(given, default):
            given = given or {}
            return {n: default(n) if given.get(n) is None else float(given[n]) for n in task_map}

        self._control = task_control.TaskControl(
            list(task_map),
            loss_weights=resolved(loss_weights, self._task_weights.get),
            sampling_weights=resolved(sampling_weights, self._task_weights.get),
            learning_rate_multipliers=resolved(learning_rate_multipliers, lambda n: 1.0),
            loss_weight_schedules=loss_weight_schedules,
            disabled_tasks=disabled_tasks,
            active_steps=active_steps,
        )
        self._default_weighting = weighting.get_weighting("static", len(task_map))

    @classmethod
    def from_config(cls, config: configs.MultiTaskConfig, logging_dir: Optional[str] = None):
        """Builds each TaskRoutine's Task through `task_factory`.

        Raises:
          ValueError: An invalid routine (see `configs.validate_task_routines`) or
            a config class without a registered Task.
        """
        configs.validate_task_routines(config.task_routines, "task.task_routines")
        tasks, weights, eval_steps = {}, {}, {}
        loss_weights, sampling_weights, multipliers, schedules, disabled, windows = {}, {}, {}, {}, [], {}
        for routine in config.task_routines:
            name = routine.resolved_name()
            tasks[name] = build_task(routine.task_config, name, logging_dir)
            weights[name] = routine.task_weight
            eval_steps[name] = routine.eval_steps
            loss_weights[name] = routine.loss_weight
            sampling_weights[name] = routine.sampling_weight
            multipliers[name] = routine.learning_rate_multiplier
            schedules[name] = routine.loss_weight_schedule
            if not routine.enabled:
                disabled.append(name)
            windows[name] = (routine.start_step, routine.stop_step)
        return cls(tasks, task_weights=weights, task_eval_steps=eval_steps, loss_weights=loss_weights,
                   sampling_weights=sampling_weights, learning_rate_multipliers=multipliers,
                   loss_weight_schedules=schedules, disabled_tasks=disabled, active_steps=windows)

    @property
    def tasks(self) -> Dict[str, base_task.Task]:
        """`{name: Task}` in task order (a plain dict, not tf.Module's tracking proxy)."""
        return dict(self._tasks)

    @property
    def task_weights(self) -> Dict[str, float]:
        return self._task_weights

    def task_weight(self, task_name: str) -> float:
        return self._task_weights[task_name]

    @property
    def control(self) -> task_control.TaskControl:
        """The per-task variables: active flags, loss and sampling weights, learning-rate multipliers."""
        return self._control

    @property
    def sampling_weights(self) -> Dict[str, float]:
        """The interleaving sampler's current weights (`sampling_weight`, else `task_weight`)."""
        return self._control.sampling_weights

    def enable_task(self, name: str) -> None:
        """Lets task `name` train again from the next step.

        Raises:
          KeyError: No such task.
        """
        self._control.enable(name)

    def disable_task(self, name: str) -> None:
        """Stops task `name` from the next step: no forward or backward pass, never sampled.

        Raises:
          KeyError: No such task.
        """
        self._control.disable(name)

    @property
    def active_tasks(self) -> List[str]:
        """The names of the enabled tasks, in task order."""
        return self._control.active_tasks()

    @classmethod
    def create_optimizer(
        cls,
        optimizer_config: config_definitions.OptimizationConfig,
        runtime_config: Optional[config_definitions.RuntimeConfig] = None,
    ) -> keras.optimizers.Optimizer:
        """Creates the Keras 3 optimizer shared by all tasks."""
        return base_task.Task.create_optimizer(optimizer_config, runtime_config)

    @property
    def default_weighting(self) -> weighting.Weighting:
        """The weighting of a joint step given none: `static` with unit weights (the plain weighted sum)."""
        return self._default_weighting

    def joint_train_step(self, task_inputs, multi_task_model, optimizer, task_metrics,
                         shared_features=None, global_step=None, **kwargs):
        """One gradient step on the sum of `loss_weight * loss` over the tasks of `task_inputs`.

        Each task's loss is `Task.total_loss` on the task's own batch (its data
        loss plus its sub-model's layer losses), so shared layers'
        regularization losses enter once per task that uses them, weighted
        like the task. The trainers call `training.joint_step.train_step`,
        which this is with the default weighting.

        Args:
          task_inputs: `{task_name: (features, labels)}`, one batch per task
            that trains (the others take no forward or backward pass).
          multi_task_model: A `MultiTaskBaseModel`, or one keras.Model for all.
          optimizer: A Keras 3 optimizer built on the model's variables.
          task_metrics: `{task_name: [metrics]}`.
          shared_features: The features every task reads, when they share them;
            an `EncoderHeadsModel` then runs its encoder once for all tasks.
          global_step: The step at which the loss-weight schedules are read.
          **kwargs: Passed to each task's `process_metrics`.

        Returns:
          `{task_name: loss, ..., "total_loss": weighted sum}`, unscaled.
        """
        logs = joint_step.train_step(self, self._default_weighting, task_inputs, multi_task_model, optimizer,
                                     task_metrics, global_step, shared_features=shared_features, **kwargs)
        del logs["weights"]
        return logs


def as_multi_task(task) -> MultiTask:
    """Wraps a single Task into a one-task MultiTask; returns a MultiTask as is."""
    return task if isinstance(task, MultiTask) else MultiTask([task])
