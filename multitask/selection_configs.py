"""Configs of model selection and early stopping: which checkpoint is best, when a task or the run stops.

`EarlyStoppingConfig` is a task routine's (`TaskRoutine.early_stopping`),
`ModelSelectionConfig` the trainer's (`trainer.model_selection`, read by
`multitask.model_selection`); `multitask.configs` re-exports both.
"""
import dataclasses
from typing import Tuple

from official.modeling import hyperparams


@dataclasses.dataclass
class EarlyStoppingConfig(hyperparams.Config):
    """Stops (disables) a task whose validation metric stopped improving.

    Attributes:
      metric: The task's evaluation metric (a key of its evaluation logs);
        "" turns early stopping off.
      mode: "higher" or "lower": which values are better.
      patience: Evaluations without improvement before the task stops.
      min_delta: An improvement must exceed the best value by more than this.
    """

    metric: str = ""
    mode: str = "higher"
    patience: int = 3
    min_delta: float = 0.0


@dataclasses.dataclass
class ModelSelectionConfig(hyperparams.Config):
    """One score over several tasks, for the best checkpoint and run-level early stopping.

    With a method set, the best-checkpoint exporter compares this score
    (`trainer.best_checkpoint_eval_metric` may be left empty; it is logged as
    "aggregate.<method>" in the exporter's info.json).

    Attributes:
      method: "" (off), "mean", "weighted_mean" or "delta_m".
      metrics: "<task>.<metric>" names.
      weights: One per metric (weighted_mean).
      baselines: Single-task values, one per metric (delta_m).
      lower_is_better: One per metric (delta_m; default all False).
      patience: > 0 ends training after this many evaluations without an
        improvement of the score (train_and_eval mode).
      min_delta: The improvement the patience counts.
    """

    method: str = ""
    metrics: Tuple[str, ...] = ()
    weights: Tuple[float, ...] = ()
    baselines: Tuple[float, ...] = ()
    lower_is_better: Tuple[bool, ...] = ()
    patience: int = 0
    min_delta: float = 0.0
