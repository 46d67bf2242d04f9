"""What a trainer reports for each `train()` call: per-task loss means, metrics and diagnostics."""
from typing import Callable, Dict, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from multitask.training import diagnostics as diagnostics_lib


class TrainLogs:
    """The running means of a training loop: each task's loss and metrics, the total loss, diagnostics."""

    def __init__(self, tasks: Mapping[str, object], weighting=None, rep_grad: bool = False):
        """Creates the metrics.

        Args:
          tasks: `{name: Task}`; each task's `build_metrics(training=True)` are kept.
          weighting: The weighting method the user chose, if any: its
            weights (and, when it balances gradients, their norms and
            cosines) are then logged per task.
          rep_grad: Whether it balances representation gradients.
        """
        self.losses = {name: keras.metrics.Mean("training_loss") for name in list(tasks) + ["total_loss"]}
        self.metrics = {name: task.build_metrics(training=True) for name, task in tasks.items()}
        self._diagnostics = None if weighting is None else diagnostics_lib.WeightingDiagnostics(
            list(tasks), gradient_level=rep_grad or not weighting.loss_level)

    def reset(self) -> None:
        for metric in list(self.losses.values()) + [m for ms in self.metrics.values() for m in ms]:
            metric.reset_state()
        if self._diagnostics is not None:
            self._diagnostics.reset()

    @tf.autograph.experimental.do_not_convert
    def record_joint_step(self, active: Sequence[str], logs: Mapping[str, tf.Tensor],
                          update_mean: Callable[[keras.metrics.Mean, tf.Tensor], None]) -> None:
        """Adds a joint step's losses (and diagnostics) of the `active` tasks, in the replica context."""
        if self._diagnostics is not None:
            self._diagnostics.update(active, logs)
        for name in list(active) + ["total_loss"]:
            update_mean(self.losses[name], logs[name])

    def task_results(self, name: str, extra: Optional[Mapping[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
        """Task `name`'s "training_loss", metrics and diagnostics, then `extra`."""
        result = {"training_loss": self.losses[name].result()}
        result.update({metric.name: metric.result() for metric in self.metrics[name]})
        if self._diagnostics is not None:
            result.update(self._diagnostics.results(name))
        result.update(extra or {})
        return result
