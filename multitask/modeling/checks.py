"""Checks of block arguments whose errors name the argument and what it allows.

Encoders, heads and architectures call them in their constructors, so a bad
config value fails with a `ValueError` before anything is built.
"""
from typing import List, Sequence

import numpy as np


def check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    """Checks that `value` is one of `allowed`.

    Raises:
      ValueError: It is not; the message lists `allowed`.
    """
    if value not in allowed:
        raise ValueError(f"{field} is {value!r}; allowed: {', '.join(allowed)}.")


def positive_sizes(field: str, values) -> List[int]:
    """Returns `values` as a list of ints.

    Raises:
      ValueError: `values` is empty or holds a size <= 0.
    """
    sizes = [int(v) for v in (values or ())]
    if not sizes or any(v <= 0 for v in sizes):
        raise ValueError(f"{field} is {values!r}; it needs one or more positive sizes.")
    return sizes


def positive_int(field: str, value, minimum: int = 1) -> int:
    """Returns `value` as an int.

    Raises:
      ValueError: `value` is not an integer (a bool is not) or is below `minimum`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{field} is {value!r}; it must be an integer >= {minimum}.")
    return int(value)
