"""Configs of the interleaving trainer's task sampler: `TaskSamplingConfig` and one per sampler.

`multitask.configs` re-exports them (`configs.TaskSamplingConfig`, ...), the
names Model Garden users write; `task_sampler.get_task_sampler` reads them.
"""
import dataclasses
from typing import Tuple

from official.modeling import hyperparams

SAMPLER_TYPES = ("uniform", "proportional", "annealing", "temperature", "round_robin", "epoch_shuffled")


@dataclasses.dataclass
class ProportionalSampleConfig(hyperparams.Config):
    """Sampling with p_i proportional to task_weight_i ** alpha."""

    alpha: float = 1.0


@dataclasses.dataclass
class AnnealingSampleConfig(hyperparams.Config):
    """Annealed sampling of Stickland & Murray (ICML 2019)."""

    steps_per_epoch: int = 5
    total_steps: int = 20


@dataclasses.dataclass
class TemperatureSampleConfig(hyperparams.Config):
    """Sampling with p_i proportional to n_i ** (1 / temperature).

    Attributes:
      temperature: T > 0; 1 is proportional to the sizes, large T near uniform.
      dataset_sizes: n_i per task, in task order.
    """

    temperature: float = 1.0
    dataset_sizes: Tuple[int, ...] = ()


@dataclasses.dataclass
class EpochShuffledSampleConfig(hyperparams.Config):
    """Every batch of every task once per epoch, in a shuffled order.

    Attributes:
      batches_per_epoch: Batches in one epoch of each task's data, in task order.
    """

    batches_per_epoch: Tuple[int, ...] = ()


@dataclasses.dataclass
class TaskSamplingConfig(hyperparams.OneOfConfig):
    """How the interleaving trainer picks a task: one of `SAMPLER_TYPES`."""

    type: str = ""
    uniform: hyperparams.Config = dataclasses.field(default_factory=hyperparams.Config)
    proportional: ProportionalSampleConfig = dataclasses.field(
        default_factory=ProportionalSampleConfig
    )
    annealing: AnnealingSampleConfig = dataclasses.field(default_factory=AnnealingSampleConfig)
    temperature: TemperatureSampleConfig = dataclasses.field(default_factory=TemperatureSampleConfig)
    round_robin: hyperparams.Config = dataclasses.field(default_factory=hyperparams.Config)
    epoch_shuffled: EpochShuffledSampleConfig = dataclasses.field(default_factory=EpochShuffledSampleConfig)

    def validate(self):
        if self.type not in SAMPLER_TYPES:
            raise ValueError(
                f"trainer.task_sampler.type is {self.type!r}; allowed: "
                f"{', '.join(SAMPLER_TYPES)}."
            )
        super().validate()
