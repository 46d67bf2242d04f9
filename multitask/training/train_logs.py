"""What a trainer reports for each `train()` call: per-task loss means, metrics and diagnostics.

A task's "training_loss" is its mean loss over the examples of the loop, not
the mean of the steps' losses: each replica adds its step's loss with the
weight `Task.loss_count(labels)` (the batch size by default; for a
`HeadTask`, the labelled entries, see `modeling.partial_labels`), and the
running mean's sums are added over replicas when it is read. A step with few
labels counts for few examples, and one and several replicas give the same
number; equal, fully labelled batches give the mean of the steps' losses, as
before. "total_loss", the joint objective of a step, is the mean over steps.
"""
from typing import Callable, Dict, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from multitask.core import base_task
from multitask.training import diagnostics as diagnostics_lib

UpdateMean = Callable[..., None]


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
        self._tasks = dict(tasks)
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
    def record_joint_step(self, active: Sequence[str], logs: Mapping[str, tf.Tensor], update_mean: UpdateMean,
                          task_inputs: Optional[Mapping[str, object]] = None) -> None:
        """Adds a joint step's losses (and diagnostics) of the `active` tasks, in the replica context.

        Args:
          active: The tasks that trained at the step.
          logs: The step's logs: each task's loss, "total_loss", diagnostics.
          update_mean: `update_mean(metric, loss, weight)` (the trainer's
            `NonFiniteGuard.update_mean`).
          task_inputs: `{task: (features, labels)}` of this replica's step,
            whose labels give each loss its weight (`Task.loss_count`);
            without them every step weighs 1.
        """
        if self._diagnostics is not None:
            self._diagnostics.update(active, logs)
        for name in active:
            self.record_task_step(name, logs[name], None if task_inputs is None else task_inputs[name], update_mean)
        update_mean(self.losses["total_loss"], logs["total_loss"])

    @tf.autograph.experimental.do_not_convert
    def record_task_step(self, name: str, loss: tf.Tensor, inputs, update_mean: UpdateMean) -> None:
        """Adds task `name`'s loss on this replica, weighted by `loss_count` of the labels of `inputs`.

        `inputs` is the task's `(features, labels)` batch on this replica;
        None weighs the step 1. Call in the replica context, outside any
        `tf.cond` (a `HeadTask`'s count is all-reduced over replicas).
        """
        if inputs is None:
            update_mean(self.losses[name], loss)
            return
        labels = base_task.split_inputs(inputs)[1]
        update_mean(self.losses[name], loss, tf.cast(self._tasks[name].loss_count(labels), tf.float32))

    def task_results(self, name: str, extra: Optional[Mapping[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
        """Task `name`'s "training_loss", metrics and diagnostics, then `extra`."""
        result = {"training_loss": self.losses[name].result()}
        result.update({metric.name: metric.result() for metric in self.metrics[name]})
        if self._diagnostics is not None:
            result.update(self._diagnostics.results(name))
        result.update(extra or {})
        return result
