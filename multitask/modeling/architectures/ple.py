"""The `ple` architecture (Tang et al., 2020): progressive layered extraction, stacked CGC levels."""
from typing import Sequence

import keras

from multitask.modeling import checks
from multitask.modeling import registry
from multitask.modeling.architectures import base
from multitask.modeling.architectures import experts as experts_lib


@registry.register_architecture("ple")
class PLE(base.Architecture):
    """Progressive layered extraction: stacked CGC levels, shared gates at inner levels.

    Level l has `num_task_experts` experts per task and `num_shared_experts`
    shared ones. Task t's gate mixes its own and the shared experts and feeds
    task t's experts and gate at the next level; at inner levels a shared gate
    mixes all experts and feeds the next level's shared experts and shared
    gate. The first level reads the encoder output. One level is CGC.
    """

    def __init__(self, encoder_factory: base.EncoderFactory, task_names: Sequence[str], inputs=None,
                 num_levels: int = 2, num_shared_experts: int = 2, num_task_experts: int = 1,
                 expert_units: Sequence[int] = (32,), expert_activation: str = "relu"):
        """Builds the encoder, the experts and the gates of every level.

        Args:
          encoder_factory: Returns the encoder.
          task_names: The tasks.
          inputs: Unused.
          num_levels: Extraction levels (1 is CGC).
          num_shared_experts: Shared experts per level.
          num_task_experts: Experts per task per level.
          expert_units: Hidden sizes of each expert MLP.
          expert_activation: Activation of the experts' layers.
        """
        super().__init__(task_names)
        self.num_levels = checks.positive_int("num_levels", num_levels)
        self.num_shared = checks.positive_int("num_shared_experts", num_shared_experts)
        self.num_task = checks.positive_int("num_task_experts", num_task_experts)
        self.encoder = encoder_factory()
        n_tasks = len(self.task_names)
        self.task_experts, self.shared_experts, self.task_gates, self.shared_gates = [], [], [], []
        for level in range(self.num_levels):
            self.task_experts.append({
                task: [experts_lib.expert(expert_units, expert_activation, f"l{level}_{task}_expert_{i}")
                       for i in range(self.num_task)] for task in self.task_names})
            self.shared_experts.append([
                experts_lib.expert(expert_units, expert_activation, f"l{level}_shared_expert_{i}")
                for i in range(self.num_shared)])
            self.task_gates.append({
                task: experts_lib.softmax_gate(self.num_task + self.num_shared, f"l{level}_{task}_gate")
                for task in self.task_names})
            if level < self.num_levels - 1:
                self.shared_gates.append(experts_lib.softmax_gate(n_tasks * self.num_task + self.num_shared,
                                                                  f"l{level}_shared_gate"))

    def _gates_below(self, last: int):
        """Task gates of levels before `last` (they feed other levels' shared gates)."""
        return [gate for level in range(last) for gate in self.task_gates[level].values()]

    def shared_layers(self):
        final = self.num_levels - 1
        layers = [self.encoder]
        for level in range(final):
            layers += [e for experts in self.task_experts[level].values() for e in experts]
            layers += self.shared_experts[level] + [self.shared_gates[level]]
        return layers + self._gates_below(final - 1) + self.shared_experts[final]

    def branch_layers(self, task):
        final = self.num_levels - 1
        layers = [self.task_gates[final - 1][task]] if final > 0 else []
        return layers + self.task_experts[final][task] + [self.task_gates[final][task]]

    def shared(self, features, training=None):
        encoded = self.encoder(features, training=training)
        final = self.num_levels - 1
        task_inputs = {task: encoded for task in self.task_names}
        shared_input = encoded
        result = {}
        for level in range(final):
            own = {task: experts_lib.stack(self.task_experts[level][task], task_inputs[task], training)
                   for task in self.task_names}
            common = experts_lib.stack(self.shared_experts[level], shared_input, training)
            if level == final - 1:
                # The task gates of this level feed only their own task: they run in the branches.
                result["gate_inputs"] = (encoded if level == 0 else
                                         keras.ops.stack([task_inputs[t] for t in self.task_names], axis=1))
                result["experts"] = keras.ops.concatenate([own[t] for t in self.task_names] + [common], axis=1)
            else:
                task_inputs = {
                    task: experts_lib.mix(self.task_gates[level][task](task_inputs[task], training=training),
                                          keras.ops.concatenate([own[task], common], axis=1))
                    for task in self.task_names}
            everything = keras.ops.concatenate([own[t] for t in self.task_names] + [common], axis=1)
            shared_input = experts_lib.mix(self.shared_gates[level](shared_input, training=training), everything)
        if final == 0:
            result["gate_inputs"] = encoded
        result["shared_experts"] = experts_lib.stack(self.shared_experts[final], shared_input, training)
        return result

    def branch(self, task, shared, training=None):
        final = self.num_levels - 1
        index = self.task_names.index(task)
        x = shared["gate_inputs"]
        if final > 0:
            if final > 1:
                x = x[:, index]
            experts = shared["experts"]
            own = experts[:, index * self.num_task:(index + 1) * self.num_task]
            common = experts[:, len(self.task_names) * self.num_task:]
            x = experts_lib.mix(self.task_gates[final - 1][task](x, training=training),
                                keras.ops.concatenate([own, common], axis=1))
        own = experts_lib.stack(self.task_experts[final][task], x, training)
        weights = self.task_gates[final][task](x, training=training)
        return experts_lib.mix(weights, keras.ops.concatenate([own, shared["shared_experts"]], axis=1))
