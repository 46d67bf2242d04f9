"""What a trainer does when a task loss or a gradient is NaN or Inf.

`NonFiniteGuard` gates every optimizer update of a step inside the training
graph: the update runs only when every loss the step differentiates (each one
passes through `optimizer.scale_loss`) and every gradient is finite on every
replica (one all-reduce of a scalar per update, no host round trip). A step
that fails the check changes no variable: the optimizer's slots and iteration
count stay as they were, so the model and optimizer always hold finite values.
Under a `keras.optimizers.LossScaleOptimizer` (float16) non-finite gradients
are the loss scaler's business (it skips the step and lowers the scale), so
only the losses are checked.

The trainer records the first such step and the task whose loss was not
finite. With policy "raise" no update is applied after that step either (the
rest of the loop runs without changing a variable) and `NonFiniteLossError` is
raised after the loop (`train_loop_end`), before orbit writes summaries or a
checkpoint: the model holds the state before that step, and so does the last
checkpoint. With "skip" the
steps are counted (`nonfinite_steps` in the logs and the checkpoint) and
training goes on; they still count as steps (the global step and the data
position advance).
"""
import contextlib
import threading
from typing import List, Sequence

import keras
import tensorflow as tf

POLICIES = ("raise", "skip")


class NonFiniteLossError(FloatingPointError):
    """A task loss or gradient became NaN or Inf and the policy is "raise"."""


def check_policy(policy: str) -> None:
    """Raises a ValueError unless `policy` is one of `POLICIES`."""
    if policy not in POLICIES:
        raise ValueError(f"trainer.on_nonfinite is {policy!r}; allowed: {', '.join(POLICIES)}.")


@tf.autograph.experimental.do_not_convert
def _all_finite(tensors) -> tf.Tensor:
    """True when every entry of `tensors` is finite: one sum per tensor, one check.

    A NaN or Inf entry makes its sum NaN or Inf. Finite entries whose sum
    overflows float32 (magnitudes near 1e38) also count as not finite.
    """
    sums = []
    for tensor in tensors:
        if tensor is None:
            continue
        tensor = tf.cast(tensor.values if isinstance(tensor, tf.IndexedSlices) else tensor, tf.float32)
        sums.append(tensor if tensor.shape.rank == 0 else tf.reduce_sum(tensor))
    return tf.math.is_finite(tf.add_n(sums)) if sums else tf.constant(True)


@tf.autograph.experimental.do_not_convert
def replica_bad_count(finite: tf.Tensor) -> tf.Tensor:
    """The number of replicas where `finite` is False, elementwise (called in a replica context)."""
    bad = tf.cast(tf.logical_not(finite), tf.int32)
    context = tf.distribute.get_replica_context()
    if context is None or tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return bad
    return context.all_reduce(tf.distribute.ReduceOp.SUM, bad)


class NonFiniteGuard:
    """Gates a trainer's updates on finite losses and gradients; remembers the first failure."""

    def __init__(self, policy: str, task_names: Sequence[str]):
        """Creates the counters; call it under the trainer's strategy scope.

        Args:
          policy: "raise" or "skip".
          task_names: The tasks, in the order of the per-task flags.

        Raises:
          ValueError: An unknown policy.
        """
        check_policy(policy)
        self.policy = policy
        self._strategy = tf.distribute.get_strategy()
        self._task_names = list(task_names)
        once = dict(trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.nonfinite_steps = tf.Variable(0, dtype=tf.int64, name="nonfinite_steps", **once)
        self._first_step = tf.Variable(-1, dtype=tf.int64, name="first_nonfinite_step", **once)
        self._first_task = tf.Variable(-1, dtype=tf.int32, name="first_nonfinite_task", **once)
        # Per replica thread (MirroredStrategy traces replicas in threads).
        self._local = threading.local()

    @tf.autograph.experimental.do_not_convert
    def _list(self, name: str) -> List[tf.Tensor]:
        if not hasattr(self._local, name):
            setattr(self._local, name, [])
        return getattr(self._local, name)

    @contextlib.contextmanager
    def guarding(self, *optimizers: keras.optimizers.Optimizer):
        """Within this block, each of `optimizers` updates only when the step is finite.

        Wraps each instance's `scale_loss` (to see every loss that gets
        differentiated) and `apply` (to gate the update) while the replica
        function is traced or run. Every update checks all the step's losses
        and its own gradients, so a non-finite loss stops every update of the
        step.
        """
        self._local = threading.local()
        for optimizer in optimizers:
            self._wrap(optimizer)
        try:
            yield
        finally:
            for optimizer in optimizers:
                del optimizer.scale_loss, optimizer.apply

    def _wrap(self, optimizer: keras.optimizers.Optimizer) -> None:
        check_grads = not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        scale_loss, apply = optimizer.scale_loss, optimizer.apply

        @tf.autograph.experimental.do_not_convert
        def guarded_scale_loss(loss):
            self._list("losses").append(loss)
            return scale_loss(loss)

        @tf.autograph.experimental.do_not_convert
        def guarded_apply(grads, trainable_variables=None):
            bad = replica_bad_count(_all_finite(self._list("losses") + (list(grads) if check_grads else [])))
            self._list("skipped").append(bad > 0)
            if self.policy == "raise":
                # A run that will raise applies no update after its first non-finite step.
                bad += tf.cast(self._first_step >= 0, tf.int32)

            def update(grads, trainable_variables):
                apply(grads, trainable_variables)
                return tf.constant(True)

            def no_update(*_):
                return tf.constant(False)

            context = tf.distribute.get_replica_context()
            if context is None or tf.__internal__.distribute.strategy_supports_no_merge_call():
                tf.cond(bad > 0, no_update, lambda: update(grads, trainable_variables))
            else:
                # A branch that calls merge_call (the optimizer's update does)
                # must run from a cross-replica cond, as Keras' LossScaleOptimizer does.
                def cross_replica(strategy, bad, grads, trainable_variables):
                    bad = strategy.experimental_local_results(bad)[0]

                    def update_each_replica():
                        strategy.extended.call_for_each_replica(update, args=(grads, trainable_variables))
                        return tf.constant(True)

                    tf.cond(bad > 0, no_update, update_each_replica)

                context.merge_call(cross_replica, args=(bad, grads, trainable_variables))

        optimizer.scale_loss, optimizer.apply = guarded_scale_loss, guarded_apply

    @tf.autograph.experimental.do_not_convert
    def step_flags(self, task_losses: Sequence[tf.Tensor]) -> tf.Tensor:
        """Per-task "not finite on some replica" counts `[T]` plus the gate's verdict.

        Call in the replica function after the step, with one loss per task of
        `task_names` (a task not trained this step passes a finite constant).

        Returns:
          int32 `[T + 1]`: the number of replicas where each task's loss is
          not finite, then 1 where an update of this step was skipped.
        """
        losses = tf.stack([tf.cast(loss, tf.float32) for loss in task_losses])
        skipped = self._list("skipped")
        skipped = tf.reduce_any(tf.stack(skipped)) if skipped else tf.constant(False)
        return tf.concat([replica_bad_count(tf.math.is_finite(losses)), [tf.cast(skipped, tf.int32)]], 0)

    @tf.autograph.experimental.do_not_convert
    def record(self, flags, step: tf.Tensor) -> None:
        """Counts a non-finite step and remembers the first one (cross-replica context).

        Args:
          flags: `step_flags`' result, per replica (all replicas agree).
          step: The global step after this step.
        """
        flags = self._strategy.experimental_local_results(flags)[0]

        def count():
            bad_tasks = flags[:-1] > 0
            bad_task = tf.where(tf.reduce_any(bad_tasks), tf.argmax(bad_tasks, output_type=tf.int32), -1)
            first = self._first_step < 0
            self._first_step.assign(tf.where(first, tf.cast(step, tf.int64), self._first_step))
            self._first_task.assign(tf.where(first, bad_task, self._first_task))
            self.nonfinite_steps.assign_add(1)

        # A cond: the bookkeeping runs only on the (rare) non-finite step.
        tf.cond(tf.reduce_any(flags > 0), count, lambda: None)

    @tf.autograph.experimental.do_not_convert
    def update_mean(self, metric: keras.metrics.Mean, loss: tf.Tensor, weight=1.0) -> None:
        """Adds `loss` with `weight` to a running mean; under "skip" NaN or Inf losses are left out.

        (Under "raise" a non-finite loss ends the run before the mean is reported.)
        """
        if self.policy == "raise" and isinstance(weight, (bool, int, float)) and weight == 1:
            metric.update_state(loss)
            return
        finite = tf.math.is_finite(loss)
        metric.update_state(tf.where(finite, loss, tf.zeros_like(loss)),
                            sample_weight=tf.cast(finite, loss.dtype) * tf.cast(weight, loss.dtype))

    def check(self) -> None:
        """Raises under "raise" when a step was not finite.

        Raises:
          NonFiniteLossError: Names the first such step and its task.
        """
        step = int(self._first_step.numpy())
        if self.policy != "raise" or step < 0:
            return
        task = int(self._first_task.numpy())
        what = f"task {self._task_names[task]!r} has a NaN or Inf loss" if task >= 0 else (
            "a gradient is NaN or Inf")
        raise NonFiniteLossError(
            f"{what} at step {step}; no update was made from that step on and no checkpoint was written "
            "after it. Set trainer.on_nonfinite=skip to skip such steps and go on."
        )
