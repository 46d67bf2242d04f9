"""Checks of the arguments task samplers are given.

Every sampler validates its inputs up front, before any training step, with
a `ValueError` naming the bad field: empty, negative, non-finite or all-zero
weights, and step or batch counts that are not integers.
"""
import math
from typing import Dict, Mapping, Union

import numpy as np

Number = Union[float, int]


def validated_weights(task_weights: Mapping[str, Number]) -> Dict[str, float]:
    """Checks the task weights and returns them as an ordered dict of floats.

    Args:
      task_weights: Sampling weight per task name.

    Returns:
      A new dict with the same keys, in the same order, and float values.

    Raises:
      ValueError: `task_weights` is empty, a weight is not a finite number or
        is negative, or all weights are zero.
    """
    if not task_weights:
        raise ValueError("task_weights is empty; a task sampler needs at least one task.")
    weights = {}
    for name, weight in task_weights.items():
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise ValueError(
                f"task_weights[{name!r}] is {weight!r}; it must be a finite number >= 0."
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"task_weights[{name!r}] is {weight!r}; it must be a finite number >= 0."
            )
        weights[name] = value
    if not any(weights.values()):
        raise ValueError(
            f"task_weights are all zero ({weights}); at least one task needs a "
            "positive weight to be sampled."
        )
    return weights


def is_integer(value) -> bool:
    """Whether `value` is an integer (a float with an integral value counts).

    Args:
      value: Any object.

    Returns:
      True for ints and NumPy integers (not bools) and for floats with an
      integral value; False otherwise.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and float(value).is_integer()
