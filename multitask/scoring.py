"""Evaluates a trained model on named splits, with Snorkel-style flat names.

A task's data config names its split with a `split` field (the experiments'
`DataConfig`s have one, with "train", "validation" and "test"). To evaluate on
another split, its `validation_data` is copied with `split` replaced and built
by the task's own `build_inputs`.
"""
from typing import Any, Dict, Sequence, Union

import keras
import orbit
import tensorflow as tf

from multitask import base_model
from multitask import evaluator as evaluator_lib
from multitask import multitask as multitask_lib
from multitask import results


def has_splits(task) -> bool:
    """Whether the task's data config names its split (so others can be evaluated)."""
    return "split" in task.task_config.validation_data.as_dict()


def split_data_config(task, split: str):
    """Returns the task's `validation_data` pointed at `split`.

    Raises:
      ValueError: The task's data config has no `split` field.
    """
    data_config = task.task_config.validation_data
    if not has_splits(task):
        raise ValueError(
            f"Task {task.name!r}: its validation_data ({type(data_config).__name__}) has no "
            f"`split` field, so split {split!r} cannot be evaluated."
        )
    return data_config.replace(split=split)


def dataset_name(task) -> str:
    """The name of a task's dataset: its data config's `dataset`, else `tfds_name`, else "data"."""
    data_config = task.task_config.validation_data
    return getattr(data_config, "dataset", "") or data_config.tfds_name or "data"


def evaluate_split(
    multi_task: multitask_lib.MultiTask,
    model: Union[keras.Model, base_model.MultiTaskBaseModel],
    split: str,
) -> Dict[str, Dict[str, Any]]:
    """Evaluates every task on its whole `split`, under the current strategy.

    Returns:
      `{task: {"loss": ..., <metric>: ...}}` as Python numbers.
    """
    strategy = tf.distribute.get_strategy()
    datasets = {
        name: orbit.utils.make_distributed_dataset(strategy, task.build_inputs, split_data_config(task, split))
        for name, task in multi_task.tasks.items()
    }
    evaluator = evaluator_lib.MultiTaskEvaluator(multi_task.tasks, model, eval_datasets=datasets)
    # The evaluator calls the loss "validation_loss" whatever data it reads.
    return {
        task: {("loss" if key == "validation_loss" else key): value for key, value in logs.items()}
        for task, logs in evaluator.evaluate(-1).items()
    }


def score(
    multi_task: multitask_lib.MultiTask,
    model: Union[keras.Model, base_model.MultiTaskBaseModel],
    splits: Sequence[str] = ("test",),
) -> Dict[str, Any]:
    """Scores every task on each split, named `task/dataset/split/metric`.

    Args:
      multi_task: The tasks (a single Task works too, wrapped).
      model: The trained model.
      splits: The splits to evaluate, e.g. ("validation", "test").

    Returns:
      `{"circle/shapes/test/accuracy": 0.97, ...}`.
    """
    multi_task = multitask_lib.as_multi_task(multi_task)
    names = {name: dataset_name(task) for name, task in multi_task.tasks.items()}
    scores = {}
    for split in splits:
        scores.update(results.flat_names(evaluate_split(multi_task, model, split), names, split))
    return scores
