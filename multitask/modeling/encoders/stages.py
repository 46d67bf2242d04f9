"""The stage protocol: how an encoder exposes its intermediate features.

An encoder exposes them through a `stages` attribute: a list of layers that,
applied in order, compute the encoder's output (`encoder(x)` equals
`stages[-1](...stages[0](x))`). Architectures that act between layers use
it: `cross_stitch` mixes the task columns after every stage and `mtan` attends
to every stage's output. An encoder without `stages` counts as one stage
(`encoder_stages`).
"""
from typing import List, Sequence

import keras
import numpy as np

from multitask.modeling import tracking


def flatten_features(x):
    """`[b, ...]` -> `[b, d]`, keeping `d` static where the shape is known."""
    if len(x.shape) == 2:
        return x
    size = int(np.prod(x.shape[1:])) if None not in x.shape[1:] else -1
    return keras.ops.reshape(x, (-1, size))


def encoder_stages(encoder: keras.layers.Layer) -> List[keras.layers.Layer]:
    """Returns `encoder.stages`, or `[encoder]` for an encoder without stages."""
    stages = getattr(encoder, "stages", None)
    return list(stages) if stages else [encoder]


def stage_outputs(encoder: keras.layers.Layer, features, training=None) -> List:
    """Returns the output of every stage of `encoder` on `features`, in order."""
    outputs, x = [], features
    for stage in encoder_stages(encoder):
        x = stage(x, training=training)
        outputs.append(x)
    return outputs


class StagedEncoder(tracking.CheckpointableLayer):
    """An encoder that is a sequence of stages (see the module docstring)."""

    def __init__(self, stages: Sequence[keras.layers.Layer], **kwargs):
        """Creates the encoder.

        Args:
          stages: The layers applied in order.
          **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

        Raises:
          ValueError: `stages` is empty.
        """
        super().__init__(**kwargs)
        if not stages:
            raise ValueError(f"{type(self).__name__} needs at least one stage.")
        self.stages = list(stages)

    def call(self, inputs, training=None):
        x = inputs
        for stage in self.stages:
            x = stage(x, training=training)
        return x
