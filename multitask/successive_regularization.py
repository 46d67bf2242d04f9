"""Successive regularization (HMTL): keep the shared layers near where a phase began.

Sanh et al. (HMTL, AAAI 2019) add to the loss an L2 penalty
`λ/2 ||θ - θ_0||²` on the shared parameters, `θ_0` their values when the
current training phase began, so that training new tasks does not wash out
what earlier phases learned. Here the penalty's gradient step is applied
decoupled from the optimizer, after each step, as AdamW decouples weight
decay: `θ ← θ - η λ (θ - θ_0)`, `η` the optimizer's current learning rate.
For plain SGD this is exactly the penalized update (with the pull evaluated
after the data step); with adaptive optimizers the pull is not rescaled by
their statistics, which keeps λ meaning the same under every optimizer and
works in both trainers (the interleaving trainer runs each task's own
`train_step`, whose loss the trainer cannot extend).

A phase begins at the first training loop of a run (not on resume: the
anchors are checkpointed) and whenever the set of active tasks changes
between loops (`MultiTask.enable_task` / `disable_task`, early stopping), or
when `start_phase()` is called. The phase's active tasks are checkpointed too
(as a fingerprint), so a change is seen across a restart: a run resumed from
a checkpoint taken before an early stop, which stops the task again, starts
the phase the uninterrupted run started.
"""
import zlib
from typing import Sequence

import tensorflow as tf


class SuccessiveRegularization(tf.Module):
    """Anchors of the shared variables and their decoupled L2 pull."""

    def __init__(self, variables: Sequence[tf.Variable], strength: float):
        """Creates the anchors; create it under the strategy's scope.

        Args:
          variables: The shared variables.
          strength: λ > 0.

        Raises:
          ValueError: λ is not a positive finite number.
        """
        super().__init__(name="successive_regularization")
        if not 0 < float(strength) < float("inf"):
            raise ValueError(f"successive_regularization is {strength!r}; it must be a positive number.")
        self.strength = float(strength)
        self._variables = list(variables)
        self.anchors = [tf.Variable(tf.identity(v), trainable=False, name="anchor") for v in self._variables]
        self.started = tf.Variable(False, trainable=False, name="started")
        # The fingerprint of the phase's active tasks; -1: unknown (none yet,
        # or a checkpoint written before it was saved).
        self.phase_tasks = tf.Variable(-1, dtype=tf.int64, trainable=False, name="phase_tasks")

    def start_phase(self) -> None:
        """Anchors the shared variables at their current values."""
        for anchor, variable in zip(self.anchors, self._variables):
            anchor.assign(tf.identity(variable))
        self.started.assign(True)

    def maybe_start_phase(self, active_tasks: Sequence[str]) -> bool:
        """Starts a phase on the first loop of a run or when the active tasks differ from the phase's.

        The phase's tasks are checkpointed: a run restored from a checkpoint
        of the phase before a task stopped, that stops it again, starts a new
        phase as the uninterrupted run did.

        Returns:
          Whether a phase started.
        """
        tasks, phase = _fingerprint(active_tasks), int(self.phase_tasks.numpy())
        self.phase_tasks.assign(tasks)
        if (phase != -1 and tasks != phase) or not bool(self.started.numpy()):
            self.start_phase()
            return True
        return False

    def apply(self, learning_rate) -> None:
        """Pulls every shared variable towards its anchor (cross-replica context)."""
        rate = tf.cast(learning_rate, tf.float32) * self.strength
        for anchor, variable in zip(self.anchors, self._variables):
            variable.assign_sub(tf.cast(rate, variable.dtype) * (tf.identity(variable) - anchor))


def _fingerprint(tasks: Sequence[str]) -> int:
    """A CRC-32 of a set of task names (the same for the same set, whatever the order)."""
    return zlib.crc32("\n".join(sorted(tasks)).encode("utf-8"))
