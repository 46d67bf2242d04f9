"""What a trainer's checkpoint holds, and the names a model's own items may not take.

The checkpoint saves the model, the optimizer, the global step, the per-task
step counters and task control, plus items the trainer and the launcher add
(`RESERVED`); a model's `checkpoint_items` (e.g. `{"encoder": encoder}`, for
warm starts) are saved beside them under their own names.
"""
from typing import Dict, Mapping, Sequence

import tensorflow as tf

RESERVED = (
    "model", "optimizer", "global_step", "task_step_counters", "weighting", "task_control",
    "shared_learning_rate_multiplier", "task_optimizers", "successive_regularization", "nonfinite_steps",
    "early_stopping", "evaluation",
)


def task_step_counters(task_names: Sequence[str]) -> Dict[str, tf.Variable]:
    """`{task: int64 variable}`: the number of steps that trained each task."""
    return {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_steps",
                              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            for name in task_names}


def build_checkpoint(model, **items) -> tf.train.Checkpoint:
    """A checkpoint of `model`, the trainer's `items` (None or empty ones left out) and the model's own items.

    Raises:
      ValueError: The model's `checkpoint_items` use a name of `RESERVED`.
    """
    model_items: Mapping = dict(getattr(model, "checkpoint_items", None) or {})
    clashes = sorted(set(model_items) & set(RESERVED))
    if clashes:
        raise ValueError(
            f"checkpoint_items of {type(model).__name__} use reserved names "
            f"{clashes}; reserved: {', '.join(RESERVED)}."
        )
    items = {name: item for name, item in items.items() if item is not None and not (isinstance(item, dict) and not item)}
    return tf.train.Checkpoint(model=model, **items, **model_items)
