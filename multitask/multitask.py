"""MultiTask: the tasks of a multi-task run, their weights and the joint step."""
from typing import Dict, List, Mapping, Optional, Union

import keras
import tensorflow as tf

from official.core import config_definitions
from official.core import task_factory

from multitask import configs
from multitask import joint_step
from multitask.core import base_task


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
    of the interleaving trainer, as in Model Garden.
    """

    def __init__(
        self,
        tasks: Union[Mapping[str, base_task.Task], List[base_task.Task]],
        task_weights: Optional[Mapping[str, float]] = None,
        task_eval_steps: Optional[Mapping[str, Optional[int]]] = None,
        name: Optional[str] = None,
    ):
        """Initializes the MultiTask.

        Args:
          tasks: A list of Tasks (keyed by `task.name`) or a `{name: Task}` dict.
          task_weights: `{name: weight}`; missing tasks weigh 1.0.
          task_eval_steps: `{name: steps}` for evaluation; None means all.
          name: The module name.

        Raises:
          ValueError: Duplicated task names, an empty or mistyped `tasks`, or a
            weight or eval step for a task that does not exist.
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
        for label, given in (("task_weights", task_weights), ("task_eval_steps", task_eval_steps)):
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

    @classmethod
    def from_config(cls, config: configs.MultiTaskConfig, logging_dir: Optional[str] = None):
        """Builds each TaskRoutine's Task through `task_factory`.

        Raises:
          ValueError: An invalid routine (see `configs.validate_task_routines`) or
            a config class without a registered Task.
        """
        configs.validate_task_routines(config.task_routines, "task.task_routines")
        tasks, weights, eval_steps = {}, {}, {}
        for routine in config.task_routines:
            name = routine.resolved_name()
            tasks[name] = build_task(routine.task_config, name, logging_dir)
            weights[name] = routine.task_weight
            eval_steps[name] = routine.eval_steps
        return cls(tasks, task_weights=weights, task_eval_steps=eval_steps)

    @property
    def tasks(self) -> Dict[str, base_task.Task]:
        """`{name: Task}` in task order (a plain dict, not tf.Module's tracking proxy)."""
        return dict(self._tasks)

    @property
    def task_weights(self) -> Dict[str, float]:
        return self._task_weights

    def task_weight(self, task_name: str) -> float:
        return self._task_weights[task_name]

    @classmethod
    def create_optimizer(
        cls,
        optimizer_config: config_definitions.OptimizationConfig,
        runtime_config: Optional[config_definitions.RuntimeConfig] = None,
    ) -> keras.optimizers.Optimizer:
        """Creates the Keras 3 optimizer shared by all tasks."""
        return base_task.Task.create_optimizer(optimizer_config, runtime_config)

    def joint_train_step(self, task_inputs, multi_task_model, optimizer, task_metrics,
                         shared_features=None, **kwargs):
        """One gradient step on the weighted sum of every task's loss.

        Each task's loss is `Task.total_loss` on the task's own batch (its data
        loss plus its sub-model's layer losses). Shared layers' regularization
        losses thus enter once per task that uses them, weighted like the task.

        Args:
          task_inputs: `{task_name: (features, labels)}`, one batch per task.
          multi_task_model: A `MultiTaskBaseModel`, or one keras.Model for all.
          optimizer: A Keras 3 optimizer built on the model's variables.
          task_metrics: `{task_name: [metrics]}`.
          shared_features: The features every task reads, when they share them;
            an `EncoderHeadsModel` then runs its encoder once for all tasks.
          **kwargs: Passed to each task's `process_metrics`.

        Returns:
          `{task_name: loss, ..., "total_loss": weighted sum}`, unscaled.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            losses, outputs, _ = joint_step.task_losses(self, task_inputs, multi_task_model, shared_features)
            total_loss = tf.add_n([self._task_weights[name] * loss for name, loss in losses.items()])
            scaled_loss = optimizer.scale_loss(total_loss / replicas)
        variables = multi_task_model.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        for name, inputs in task_inputs.items():
            _, labels = base_task.split_inputs(inputs)
            self._tasks[name].process_metrics(task_metrics[name], labels, outputs[name], **kwargs)
        losses["total_loss"] = total_loss
        return losses


def as_multi_task(task) -> MultiTask:
    """Wraps a single Task into a one-task MultiTask; returns a MultiTask as is."""
    return task if isinstance(task, MultiTask) else MultiTask([task])
