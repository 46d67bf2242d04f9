"""The `cgc` architecture (Tang et al., 2020): customized gate control, PLE with one level."""
from typing import Sequence

from multitask.modeling import registry
from multitask.modeling.architectures import base
from multitask.modeling.architectures import ple


@registry.register_architecture("cgc")
def cgc(encoder_factory: base.EncoderFactory, task_names: Sequence[str], inputs=None, num_shared_experts: int = 2,
        num_task_experts: int = 1, expert_units: Sequence[int] = (32,), expert_activation: str = "relu") -> ple.PLE:
    """Customized gate control: shared experts, experts per task, one gate per task (PLE with one level)."""
    return ple.PLE(encoder_factory, task_names, inputs, num_levels=1, num_shared_experts=num_shared_experts,
                   num_task_experts=num_task_experts, expert_units=expert_units, expert_activation=expert_activation)
