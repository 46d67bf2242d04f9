"""Checks that each task's data fit its model before a run writes anything.

`check_data` reads the first batch of every task's dataset and runs it
eagerly through the task's sub-model, loss and metrics. A dataset that yields
nothing, the wrong structure, shape or dtype for the model, labels the loss
or metrics cannot take (e.g. class ids outside the head's range), or a
non-finite first loss becomes one `DataError` naming the task, the split and
the problem, instead of a traceback from inside a traced training loop. Only
the first batch is checked; later batches are guarded by the trainers'
non-finite policy (`multitask.training.nonfinite`).

The trainers read one batch of a task's train data per step without end, so
a train dataset whose cardinality is known and smaller than
`trainer.train_steps` is refused too (it must `repeat()`); one whose
cardinality is unknown is caught where it ends, during training
(`multitask.training.input_distribution.TrainDataEndedError`).
"""
from typing import Iterable, Optional

import tensorflow as tf

from multitask import base_model
from multitask import errors
from multitask import input_factory
from multitask.core import base_task


class DataError(ValueError):
    """A task's dataset does not fit its model (one line)."""


def _first_batch(dataset, what: str):
    try:
        for batch in dataset.take(1):
            return batch
    except Exception as error:  # pylint: disable=broad-except  (a user pipeline: any error)
        raise DataError(f"{what}: reading the first batch failed: {errors.one_line(error)}.") from error
    raise DataError(f"{what}: the dataset is empty (no batch; check its size against the global batch size).")


def _check_length(dataset, what: str, train_steps: Optional[int]) -> None:
    batches = int(dataset.cardinality())
    if train_steps is not None and 0 <= batches < train_steps:
        raise DataError(f"{what}: the dataset ends after {batches} batches, but trainer.train_steps is "
                        f"{train_steps} and a step reads one batch; repeat() it in build_inputs.")


def _check_batch(task: base_task.Task, model, inputs, what: str) -> None:
    features, labels = base_task.split_inputs(inputs)
    try:
        outputs = model(features, training=False)
    except Exception as error:  # pylint: disable=broad-except
        spec = tf.nest.map_structure(lambda t: f"{t.dtype.name}{list(t.shape)}", features)
        raise DataError(f"{what}: the features ({spec}) do not fit the model: {errors.one_line(error)}.") from error
    try:
        loss = task.total_loss(labels, outputs, model)
        task.process_metrics(task.build_metrics(training=True), labels, outputs)
    except Exception as error:  # pylint: disable=broad-except
        spec = tf.nest.map_structure(lambda t: f"{t.dtype.name}{list(t.shape)}", labels)
        raise DataError(f"{what}: the labels ({spec}) do not fit the loss or metrics: {errors.one_line(error)}.") from error
    if not bool(tf.reduce_all(tf.math.is_finite(loss))):
        raise DataError(f"{what}: the loss of the first batch is NaN or Inf (labels out of range, or bad values?).")


def check_data(multi_task, model, splits: Iterable[str] = ("train",), shared_train_data=None,
               strategy: Optional[tf.distribute.Strategy] = None, train_steps: Optional[int] = None) -> None:
    """Runs every task's first batch of each split through its model, loss and metrics.

    Args:
      multi_task: The `MultiTask`.
      model: Its `MultiTaskBaseModel` or one keras.Model for all tasks.
      splits: "train" (the task's `train_data`) and/or "validation".
      shared_train_data: `task.shared_train_data`: when set, the train split is
        that one dataset of `(features, {task: labels})`.
      strategy: The run's strategy (its scope is entered); default: the current one.
      train_steps: `trainer.train_steps`: a train dataset of known cardinality
        must hold at least this many batches; None skips the check.

    Raises:
      DataError: The first problem found, in one line naming task and split.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        batches = []  # (task, what, batch), in the order they are checked.
        for split in splits:
            if split == "train" and shared_train_data is not None:
                try:
                    dataset = input_factory.build_shared_inputs(shared_train_data)
                except ValueError as error:
                    raise DataError(str(error)) from error
                shared = _first_batch(dataset, "task.shared_train_data")
                _check_length(dataset, "task.shared_train_data", train_steps)
            for name, task in multi_task.tasks.items():
                what = f"task {name!r}, {split} data"
                if split == "train" and shared_train_data is not None:
                    features, labels = base_task.split_inputs(shared)
                    if not isinstance(labels, dict) or task.label_key not in labels:
                        raise DataError(f"task.shared_train_data: labels must be a dict with a key per task; "
                                        f"no {task.label_key!r} (task {name!r}).")
                    batch = (features, labels[task.label_key])
                else:
                    config = getattr(task.task_config, f"{split}_data", None)
                    if config is None:
                        continue
                    try:
                        dataset = task.build_inputs(config)
                    except Exception as error:  # pylint: disable=broad-except
                        raise DataError(f"{what}: building the dataset failed: {errors.one_line(error)}.") from error
                    batch = _first_batch(dataset, what)
                    if split == "train":
                        _check_length(dataset, what, train_steps)
                batches.append((name, what, batch))
        # As the trainers do: sub-models without Keras inputs are built from their features' spec.
        first = {}
        for name, _, batch in batches:
            first.setdefault(name, batch)
        try:
            base_model.ensure_built(model, list(first), lambda name: tf.nest.map_structure(
                tf.TensorSpec.from_tensor, base_task.split_inputs(first[name])[0]))
        except ValueError as error:
            raise DataError(str(error)) from error
        for name, what, batch in batches:
            _check_batch(multi_task.tasks[name], base_model.task_model(model, name), batch, what)
