"""Experts and gates of the mixture-of-experts architectures (mmoe, dselect_k, cgc, ple).

Experts are MLPs (`expert_units`, ReLU by default) on the flattened input;
softmax gates read the flattened input too.
"""
from typing import Sequence

import keras

from multitask.modeling import checks


def expert(units: Sequence[int], activation: str, name: str) -> keras.Sequential:
    """An expert MLP: Flatten, then one Dense layer per entry of `units`.

    Raises:
      ValueError: `units` is empty or holds a size <= 0.
    """
    sizes = checks.positive_sizes("expert_units", units)
    return keras.Sequential([keras.layers.Flatten()] + [keras.layers.Dense(u, activation=activation) for u in sizes],
                            name=name)


def softmax_gate(num_experts: int, name: str) -> keras.Sequential:
    """A gate: Flatten, then a softmax Dense layer of `num_experts` weights."""
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(num_experts, activation="softmax")],
                            name=name)


def stack(experts, x, training):
    """The experts' outputs on `x`, `[b, experts, d]`."""
    return keras.ops.stack([e(x, training=training) for e in experts], axis=1)


def mix(weights, experts):
    """`sum_e weights[b, e] * experts[b, e, :]`."""
    return keras.ops.einsum("be,bed->bd", keras.ops.cast(weights, experts.dtype), experts)
