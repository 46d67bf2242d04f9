"""MultiTaskBaseModel: one Keras sub-model per task over shared layers.

Subclasses create the shared layers once, pass them into each task's
sub-model through its constructor, and return the sub-models from
`_instantiate_sub_tasks`. A layer passed into several sub-models is one set of
variables, updated by every task that uses it.
"""
import abc
from typing import Dict, List, Mapping

import keras
import tensorflow as tf

from multitask.core import warm_start


def unique_variables(models) -> List[tf.Variable]:
    """Returns the variables of `models`' lists, each once, in first-seen order.

    Args:
      models: An iterable of variable lists.
    """
    seen, result = set(), []
    for variables in models:
        for variable in variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                result.append(variable)
    return result


class MultiTaskBaseModel(tf.Module, metaclass=abc.ABCMeta):
    """Holds one `keras.Model` per task, sharing layers between them."""

    def __init__(self, init_checkpoint: str = "", **kwargs):
        """Creates the sub-models.

        Args:
          init_checkpoint: Optional checkpoint (file or directory) that
            `initialize()` restores `checkpoint_items` from.
          **kwargs: Passed to `tf.Module` (e.g. `name`).
        """
        super().__init__(**kwargs)
        self._init_checkpoint = init_checkpoint
        self._sub_tasks = self._instantiate_sub_tasks()

    @abc.abstractmethod
    def _instantiate_sub_tasks(self) -> Dict[str, keras.Model]:
        """Returns `{task_name: keras.Model}`, sharing layers between them."""

    @property
    def sub_tasks(self) -> Mapping[str, keras.Model]:
        """The `{task_name: keras.Model}` map."""
        return self._sub_tasks

    @property
    def trainable_variables(self) -> List[tf.Variable]:
        """Trainable variables of all sub-models, shared ones listed once."""
        return unique_variables(m.trainable_variables for m in self._sub_tasks.values())

    @property
    def variables(self) -> List[tf.Variable]:
        """All variables of all sub-models, shared ones listed once."""
        return unique_variables(m.variables for m in self._sub_tasks.values())

    @property
    def checkpoint_items(self) -> Dict[str, tf.__internal__.tracking.Trackable]:
        """Objects `initialize()` restores from `init_checkpoint`, by name.

        Subclasses return e.g. `{"encoder": self.encoder}` to warm-start the
        shared layers from a checkpoint that holds them under that name.
        """
        return {}

    def build(self):
        """Creates every variable by calling each unbuilt sub-model.

        A sub-model is built from its `inputs` (set by functional models, or by a
        subclass that defines `self.inputs` as Keras inputs).

        Raises:
          ValueError: A sub-model is not built and has no `inputs`.
        """
        for name, model in self._sub_tasks.items():
            if model.built and model.variables:
                continue
            inputs = getattr(model, "inputs", None)
            if inputs is None or (isinstance(inputs, (list, tuple, dict)) and not inputs):
                raise ValueError(
                    f"Sub-model of task {name!r} ({type(model).__name__}) is not built and "
                    "has no `inputs`: make it a functional model, set `self.inputs` to "
                    "keras.Input(...) structures, or call it once before training."
                )
            model(inputs)

    def initialize(self):
        """Warm-starts `checkpoint_items` from `init_checkpoint`, if both are set.

        Used as the checkpoint manager's `init_fn`: it runs only when the run's
        model_dir has no checkpoint of its own.

        Raises:
          ValueError: The checkpoint is missing or lacks the items' variables.
        """
        if self._init_checkpoint and self.checkpoint_items:
            warm_start.restore_items(self.checkpoint_items, self._init_checkpoint)


def task_model(model, task_name: str) -> keras.Model:
    """Returns the model that serves `task_name`.

    Args:
      model: A `MultiTaskBaseModel` or one `keras.Model` serving every task.
      task_name: The task.

    Raises:
      KeyError: `model` is a MultiTaskBaseModel without a sub-model for the task.
    """
    if isinstance(model, MultiTaskBaseModel):
        if task_name not in model.sub_tasks:
            raise KeyError(
                f"Task {task_name!r} has no sub-model in {type(model).__name__}; "
                f"sub_tasks: {', '.join(model.sub_tasks)}."
            )
        return model.sub_tasks[task_name]
    return model


def check_tasks_in_model(model, task_names) -> None:
    """Raises a KeyError naming the first task that `model` does not serve."""
    for name in task_names:
        task_model(model, name)


def ensure_built(model) -> None:
    """Creates all variables of `model` before the optimizer is built.

    Raises:
      ValueError: `model` is a plain keras.Model that has never been built.
    """
    if isinstance(model, MultiTaskBaseModel):
        model.build()
    elif not model.built:
        raise ValueError(
            f"{type(model).__name__} is not built; call it once or build it before training."
        )
