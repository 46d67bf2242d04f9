"""The `mlp` encoder: Dense layers, one stage per hidden layer."""
from typing import Sequence

import keras

from multitask.modeling import checks
from multitask.modeling import registry
from multitask.modeling.encoders import stages as stages_lib


@registry.register_encoder("mlp")
class MLPEncoder(stages_lib.StagedEncoder):
    """Dense layers on the last axis, one stage per hidden layer."""

    def __init__(self, hidden_sizes: Sequence[int] = (64,), activation: str = "relu",
                 dropout: float = 0.0, **kwargs):
        """Creates the encoder.

        Args:
          hidden_sizes: Units of each Dense layer.
          activation: Activation of every layer (a Keras activation name).
          dropout: Dropout rate after each layer (0 for none).
          **kwargs: Passed to `keras.layers.Layer`.

        Raises:
          ValueError: Empty or non-positive `hidden_sizes`, or a dropout outside [0, 1).
        """
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is {dropout!r}; it must be in [0, 1).")
        stages = []
        for units in checks.positive_sizes("hidden_sizes", hidden_sizes):
            layers = [keras.layers.Dense(units, activation=activation)]
            if dropout:
                layers.append(keras.layers.Dropout(dropout))
            stages.append(keras.Sequential(layers))
        super().__init__(stages, **kwargs)
