"""`Fusion`: fuses named feature vectors (modalities, groups of them) into one."""
from typing import Mapping, Sequence

import keras
import tensorflow as tf

from multitask.modeling import checks
from multitask.modeling import tracking
from multitask.modeling.encoders import stages

FUSIONS = ("concat", "attention", "gating")


class Fusion(tracking.CheckpointableLayer):
    """Fuses named feature vectors into one.

    Every input is flattened and projected to `units` (Dense, tanh); then:

    - `concat`: the projections side by side, `[b, n * units]`;
    - `attention`: a softmax over the inputs of the score `v . tanh(W p + b)`
      of each projection `p` (additive attention with one learned query),
      and the weighted sum of the projections, `[b, units]`;
    - `gating`: gated multimodal units (Arevalo et al., 2017): a sigmoid gate
      per input and unit, computed from all inputs, scales each projection,
      and the gated projections are summed, `[b, units]`.
    """

    def __init__(self, names: Sequence[str], units: int = 32, fusion: str = "concat", **kwargs):
        """Creates the layer.

        Args:
          names: The input names, in the order they are fused.
          units: Width of each projection.
          fusion: One of `FUSIONS`.
          **kwargs: Passed to `keras.layers.Layer`.
        """
        super().__init__(**kwargs)
        checks.check_choice("fusion", fusion, FUSIONS)
        if units <= 0:
            raise ValueError(f"projection units is {units!r}; it must be positive.")
        self.names = tuple(names)
        self.fusion = fusion
        self.projections = {name: keras.layers.Dense(units, activation="tanh", name=f"{name}_projection")
                            for name in self.names}
        if fusion == "attention":
            self.score_hidden = keras.layers.Dense(units, activation="tanh", name="score_hidden")
            self.score = keras.layers.Dense(1, use_bias=False, name="score")
        elif fusion == "gating":
            self.gate = keras.layers.Dense(len(self.names) * units, activation="sigmoid", name="gate")
        self.units = units

    def call(self, inputs: Mapping[str, tf.Tensor], training=None):
        flat = [stages.flatten_features(inputs[name]) for name in self.names]
        projected = [self.projections[name](x) for name, x in zip(self.names, flat)]
        if self.fusion == "concat":
            return keras.ops.concatenate(projected, axis=-1)
        stacked = keras.ops.stack(projected, axis=1)  # [b, n, units]
        if self.fusion == "attention":
            weights = keras.ops.softmax(self.score(self.score_hidden(stacked)), axis=1)  # [b, n, 1]
        else:
            gates = self.gate(keras.ops.concatenate(flat, axis=-1))
            weights = keras.ops.reshape(gates, (-1, len(self.names), self.units))
        return keras.ops.sum(weights * stacked, axis=1)
