"""Moving single-task callers and models to a multi-task model.

- `BackwardsCompatibilityWrapper` is a keras.Model whose `call` returns only
  the primary task's output, so code written for the single-task model keeps
  working; `get_all_outputs` gives every task's output.
- `migrate_single_task` (progressive migration) restores a single-task
  model's checkpoint into one task's sub-model of a multi-task model (its
  shared trunk and its head), so that before any multi-task training the task's
  outputs equal the single-task model's; new tasks get fresh heads.
"""
from typing import Dict

import keras

from multitask import base_model
from multitask.core import warm_start


class BackwardsCompatibilityWrapper(keras.Model):
    """A multi-task model that answers like its primary task's single-task model."""

    def __init__(self, multi_task_model, primary_task: str, **kwargs):
        """Wraps `multi_task_model` (variables are shared, not copied).

        Args:
          multi_task_model: A `MultiTaskBaseModel`.
          primary_task: The task whose output `call` returns.
          **kwargs: Passed to keras.Model.

        Raises:
          KeyError: `primary_task` has no sub-model.
        """
        super().__init__(**kwargs)
        self._sub_models = dict(multi_task_model.sub_tasks)
        self._multi_task_model = multi_task_model
        self._primary = None
        self.set_primary_task(primary_task)

    @property
    def primary_task(self) -> str:
        return self._primary

    def set_primary_task(self, name: str) -> None:
        """Makes `call` return task `name`'s output.

        Raises:
          KeyError: No sub-model for `name`.
        """
        base_model.task_model(self._multi_task_model, name)
        self._primary = name

    def call(self, inputs, training=None):
        return self._sub_models[self._primary](inputs, training=training)

    def get_all_outputs(self, inputs, training=None) -> Dict[str, object]:
        """`{task: output}` for every task (the encoder runs once for an `EncoderHeadsModel`)."""
        model = self._multi_task_model
        if isinstance(model, base_model.EncoderHeadsModel):
            representation = model.encode(inputs, training=training)
            return {name: model.task_outputs(name, representation, training=training) for name in self._sub_models}
        return {name: sub(inputs, training=training) for name, sub in self._sub_models.items()}


def migrate_single_task(multi_task_model, task_name: str, ckpt_dir_or_file: str, item: str = "model") -> str:
    """Restores a single-task model's checkpoint into task `task_name`'s sub-model.

    The sub-model must have the single-task model's structure (e.g. both are
    `EncoderHead`s of the same encoder and head architectures): its shared
    trunk and its head take the single-task values; other tasks' heads stay
    as they are. Call it before training (e.g. as the checkpoint manager's
    `init_fn`), after the multi-task model is built.

    Args:
      multi_task_model: A `MultiTaskBaseModel`.
      task_name: The task the single-task model was trained for.
      ckpt_dir_or_file: The single-task checkpoint (prefix or directory).
      item: The checkpoint's top-level name of the model ("model" in the
        trainers' checkpoints).

    Returns:
      The checkpoint path read.

    Raises:
      KeyError: No sub-model for `task_name`.
      ValueError: The checkpoint lacks the sub-model's variables.
    """
    sub_model = base_model.task_model(multi_task_model, task_name)
    base_model.ensure_built(multi_task_model)
    return warm_start.restore_items({item: sub_model}, ckpt_dir_or_file)
