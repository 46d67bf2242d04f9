"""The `dselect_k` architecture (Hazimeh et al., 2021): MMoE with DSelect-k gates."""
import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from multitask.modeling import checks
from multitask.modeling import registry
from multitask.modeling.architectures import base
from multitask.modeling.architectures import mmoe
from multitask.modeling.encoders import stages as stages_lib


def smooth_step(x, gamma: float):
    """The cubic smooth-step of Hazimeh et al.: 0 below -gamma/2, 1 above gamma/2."""
    cubic = -2.0 / gamma**3 * x**3 + 3.0 / (2.0 * gamma) * x + 0.5
    return tf.where(x <= -gamma / 2, tf.zeros_like(x), tf.where(x >= gamma / 2, tf.ones_like(x), cubic))


class DSelectKGate(keras.layers.Layer):
    """Per-example DSelect-k gate (Hazimeh et al., 2021) over `num_experts` experts.

    `k` single-expert selectors each read `m = ceil(log2(num_experts))`
    smooth-step bits `S(z)` (z from a Dense layer of the input) and give
    expert e the weight `prod_j (S(z_j) if bit j of e is 1 else 1 - S(z_j))`;
    the selectors are mixed by a softmax of k logits (another Dense layer).
    In training it adds, as layer losses, `entropy_reg` times the selectors'
    entropy (pushes them to one expert each) and, when `num_experts` is not a
    power of 2, the sum over selectors of 1 / (their weight on existing
    experts); both are averaged over the batch rather than summed, so they do
    not grow with the batch size.
    """

    def __init__(self, num_experts: int, k: int, gamma: float = 1.0, entropy_reg: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts, self.k, self.gamma, self.entropy_reg = num_experts, k, gamma, entropy_reg
        self.num_bits = max(1, math.ceil(math.log2(num_experts)))
        codes = [[(e >> (self.num_bits - 1 - j)) & 1 for j in range(self.num_bits)] for e in range(num_experts)]
        self._codes = np.array(codes, bool)  # [n, m]
        small = keras.initializers.RandomUniform(-gamma / 100, gamma / 100)
        self.z_logits = keras.layers.Dense(k * self.num_bits, kernel_initializer=small, bias_initializer=small)
        self.w_logits = keras.layers.Dense(k, kernel_initializer=keras.initializers.RandomUniform(),
                                           bias_initializer=keras.initializers.RandomUniform())

    def call(self, inputs, training=None):
        x = stages_lib.flatten_features(inputs)
        z = keras.ops.reshape(self.z_logits(x), (-1, self.k, 1, self.num_bits))
        bits = smooth_step(z, self.gamma)  # [b, k, 1, m]
        selectors = tf.reduce_prod(tf.where(self._codes[None, None], bits, 1.0 - bits), axis=-1)  # [b, k, n]
        selector_weights = keras.ops.softmax(self.w_logits(x), axis=-1)[..., None]  # [b, k, 1]
        if training:
            per_example = 0.0
            if self.entropy_reg:
                entropy = -tf.reduce_sum(selectors * tf.math.log(selectors + 1e-6), axis=[1, 2])
                per_example += self.entropy_reg * entropy
            if self.num_experts != 2**self.num_bits:
                per_example += tf.reduce_sum(1.0 / tf.reduce_sum(selectors, axis=-1), axis=1)
            if self.entropy_reg or self.num_experts != 2**self.num_bits:
                self.add_loss(tf.reduce_mean(per_example))
        return tf.reduce_sum(selector_weights * selectors, axis=1)  # [b, n]


@registry.register_architecture("dselect_k")
class DSelectK(mmoe.MMoE):
    """MMoE with DSelect-k gates: each task mixes at most k of the shared experts."""

    def __init__(self, encoder_factory: base.EncoderFactory, task_names: Sequence[str], inputs=None,
                 num_experts: int = 4, k: int = 2, gamma: float = 1.0, entropy_reg: float = 0.0,
                 expert_units: Sequence[int] = (32,), expert_activation: str = "relu"):
        """Builds the encoder, the experts and one DSelect-k gate per task.

        Args:
          encoder_factory: Returns the encoder.
          task_names: The tasks.
          inputs: Unused.
          num_experts: Shared experts.
          k: Selectors per gate (the most experts a task mixes).
          gamma: Width of the smooth-step's cubic region.
          entropy_reg: Weight of the selectors' entropy penalty (0 for none).
          expert_units: Hidden sizes of each expert MLP.
          expert_activation: Activation of the experts' layers.
        """
        self.k = checks.positive_int("k", k)
        if gamma <= 0:
            raise ValueError(f"gamma is {gamma!r}; it must be positive.")
        self.gamma, self.entropy_reg = float(gamma), float(entropy_reg)
        super().__init__(encoder_factory, task_names, inputs, num_experts, expert_units, expert_activation)

    def _gate(self, task):
        return DSelectKGate(self.num_experts, self.k, self.gamma, self.entropy_reg, name=f"{task}_gate")
