"""The `mmoe` architecture (Ma et al., 2018): shared experts, one softmax gate per task."""
from typing import Sequence

import keras

from multitask.modeling import checks
from multitask.modeling import registry
from multitask.modeling.architectures import base
from multitask.modeling.architectures import experts as experts_lib


@registry.register_architecture("mmoe")
class MMoE(base.Architecture):
    """Multi-gate mixture of experts: shared experts, one softmax gate per task.

    The shared part is the encoder and the experts; task t's branch is its
    gate over the experts. Subclasses change the gate (`_gate`).
    """

    def __init__(self, encoder_factory: base.EncoderFactory, task_names: Sequence[str], inputs=None,
                 num_experts: int = 4, expert_units: Sequence[int] = (32,), expert_activation: str = "relu"):
        """Builds the encoder, the experts and the gates.

        Args:
          encoder_factory: Returns the encoder.
          task_names: The tasks.
          inputs: Unused.
          num_experts: Shared experts.
          expert_units: Hidden sizes of each expert MLP (the last is its output width).
          expert_activation: Activation of the experts' layers.
        """
        super().__init__(task_names)
        self.num_experts = checks.positive_int("num_experts", num_experts)
        self.encoder = encoder_factory()
        self.experts = [experts_lib.expert(expert_units, expert_activation, f"expert_{i}")
                        for i in range(self.num_experts)]
        self.gates = {task: self._gate(task) for task in self.task_names}

    def _gate(self, task: str) -> keras.layers.Layer:
        return experts_lib.softmax_gate(self.num_experts, f"{task}_gate")

    def shared_layers(self):
        return [self.encoder] + self.experts

    def branch_layers(self, task):
        return [self.gates[task]]

    def shared(self, features, training=None):
        encoded = self.encoder(features, training=training)
        return {"encoded": encoded, "experts": experts_lib.stack(self.experts, encoded, training)}

    def branch(self, task, shared, training=None):
        weights = self.gates[task](shared["encoded"], training=training)
        return experts_lib.mix(weights, shared["experts"])
