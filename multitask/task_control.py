"""Runtime task control: per-task knobs held in variables, and the plan of each loop.

`TaskControl` holds, for every task of a `MultiTask`, the knobs a run can
change between training loops without rebuilding anything:

- `active`: a boolean `tf.Variable`; `enable` / `disable` take effect at the
  next loop (see below). An optional step window `[start_step, stop_step)`
  (from config) further restricts when the task trains, to the exact step.
- `loss_weight`: a float `tf.Variable` (the joint trainer's loss weight),
  optionally multiplied by a schedule over the global step.
- `learning_rate_multiplier`: a float `tf.Variable` scaling the updates of
  the task's variables (see `training.update_guard`).
- `sampling_weight`: a float `tf.Variable`, the interleaving sampler's weight.
  The samplers that use weights (proportional, annealing) compute their
  distribution from the variables inside the traced step, so
  `set_sampling_weight` takes effect at the next step without retracing.

All variables are tracked by the module, so a trainer's checkpoint that holds
the `TaskControl` saves and restores them.

A trainer reads the knobs that decide which tasks train when a loop starts
(they are assigned eagerly, between loops): `loop_plan(step)` gives the tasks
that train from `step` on (flag set and inside their step window) and those
whose updates must be scaled (multiplier not 1), and `steps_until_change(step)`
how many steps that plan holds before a step window opens or closes. The
trainers cut a loop at those boundaries and trace one step per plan, so a
task that is off takes no forward or backward pass at all, and a task that is
on reads no flag in the graph. Toggling a task back and forth traces each
distinct plan once; a multiplier that moves between values other than 1 (or a
loss or sampling weight that changes) retraces nothing.
"""
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

SCHEDULE_TYPES = ("", "piecewise", "linear")


@tf.autograph.experimental.do_not_convert
def schedule_factor(schedule, step) -> tf.Tensor:
    """The loss-weight schedule's factor at `step`, a float32 scalar.

    Args:
      schedule: None or an object with `type`, `boundaries` and `values`
        (a `configs.LossWeightScheduleConfig`). "piecewise": `values[i]` for
        `boundaries[i-1] <= step < boundaries[i]` (one more value than
        boundaries, as `keras.optimizers.schedules.PiecewiseConstantDecay`).
        "linear": linear interpolation through the points
        `(boundaries[i], values[i])`, constant before the first and after the
        last (e.g. boundaries (0, 1000), values (0, 1) ramps up over 1000 steps).
      step: The global step (a tensor, variable or int).
    """
    if schedule is None or not schedule.type:
        return tf.constant(1.0, tf.float32)
    step = tf.cast(step, tf.float32)
    boundaries = tf.constant([float(b) for b in schedule.boundaries], tf.float32)
    values = tf.constant([float(v) for v in schedule.values], tf.float32)
    if schedule.type == "piecewise":
        return tf.gather(values, tf.searchsorted(boundaries, tf.reshape(step, [1]), side="right")[0])
    last = len(schedule.boundaries) - 1
    if last == 0:
        return values[0]
    upper = tf.searchsorted(boundaries, tf.reshape(step, [1]), side="right")[0]
    upper = tf.clip_by_value(upper, 1, last)
    x0, x1 = boundaries[upper - 1], boundaries[upper]
    y0, y1 = values[upper - 1], values[upper]
    fraction = tf.clip_by_value((step - x0) / (x1 - x0), 0.0, 1.0)
    return y0 + fraction * (y1 - y0)


def validate_schedule(schedule, field: str) -> None:
    """Raises a ValueError naming `field` when the schedule is malformed."""
    if schedule is None or not schedule.type:
        return
    if schedule.type not in SCHEDULE_TYPES:
        raise ValueError(f"{field}.type is {schedule.type!r}; allowed: piecewise, linear (or '' for none).")
    boundaries, values = list(schedule.boundaries or ()), list(schedule.values or ())
    if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
        raise ValueError(f"{field}.boundaries {boundaries} must be strictly increasing.")
    if schedule.type == "piecewise" and len(values) != len(boundaries) + 1:
        raise ValueError(
            f"{field}: a piecewise schedule needs one more value than boundaries; got "
            f"{len(values)} values and {len(boundaries)} boundaries."
        )
    if schedule.type == "linear" and (not boundaries or len(values) != len(boundaries)):
        raise ValueError(
            f"{field}: a linear schedule needs one value per boundary (at least one); got "
            f"{len(values)} values and {len(boundaries)} boundaries."
        )
    if any(v < 0 for v in values):
        raise ValueError(f"{field}.values {values} must be >= 0.")


class LoopPlan(NamedTuple):
    """What a traced stretch of a training loop trains, fixed when it starts.

    Attributes:
      active: The tasks that train at every step of the stretch, in task
        order; the others take no step at all.
      scaled: The tasks whose learning-rate multiplier is not 1 now: the loop
        scales their updates (reading the multiplier variables, so a new
        value other than 1 needs no new plan).
    """

    active: Tuple[str, ...]
    scaled: frozenset


def _check_knob(value, label: str) -> float:
    value = float(value)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{label} is {value!r}; it must be a finite number >= 0.")
    return value


class TaskControl(tf.Module):
    """Per-task knobs of a `MultiTask` that can change while it trains."""

    def __init__(
        self,
        task_names: Sequence[str],
        loss_weights: Mapping[str, float],
        sampling_weights: Mapping[str, float],
        learning_rate_multipliers: Mapping[str, float],
        loss_weight_schedules: Optional[Mapping[str, object]] = None,
        disabled_tasks: Iterable[str] = (),
        active_steps: Optional[Mapping[str, Tuple[int, Optional[int]]]] = None,
    ):
        """Creates the variables; create it under the strategy's scope.

        Args:
          task_names: The tasks, in order.
          loss_weights: `{task: weight}` for every task.
          sampling_weights: `{task: weight}` for every task.
          learning_rate_multipliers: `{task: multiplier}` for every task.
          loss_weight_schedules: `{task: LossWeightScheduleConfig}`.
          disabled_tasks: Tasks whose flag starts False.
          active_steps: `{task: (start_step, stop_step or None)}`: the task
            trains only while `start_step <= global_step < stop_step`.

        Raises:
          ValueError: A negative or non-finite knob, a malformed schedule or
            step window, or an unknown task in `disabled_tasks`.
        """
        super().__init__(name="task_control")
        names = list(task_names)
        disabled = set(disabled_tasks)
        unknown = sorted(disabled - set(names))
        if unknown:
            raise ValueError(f"disabled tasks {unknown} are not tasks; tasks: {', '.join(names)}.")
        schedules = dict(loss_weight_schedules or {})
        for name, schedule in schedules.items():
            validate_schedule(schedule, f"loss_weight_schedule of task {name!r}")
        self._windows = {}
        for name, (start, stop) in (active_steps or {}).items():
            start = int(start or 0)
            if start < 0 or (stop is not None and int(stop) <= start):
                raise ValueError(
                    f"Task {name!r}: start_step {start} and stop_step {stop} must satisfy "
                    "0 <= start_step < stop_step."
                )
            if start or stop is not None:
                self._windows[name] = (start, None if stop is None else int(stop))
        self._names = names
        self._schedules = {name: schedules.get(name) for name in names}
        self._initial_loss_weights = {
            name: _check_knob(loss_weights[name], f"loss_weight of task {name!r}") for name in names
        }
        self._initial_sampling_weights = {
            name: _check_knob(sampling_weights[name], f"sampling_weight of task {name!r}") for name in names
        }
        self._initial_multipliers = {
            name: _check_knob(learning_rate_multipliers[name], f"learning_rate_multiplier of task {name!r}")
            for name in names
        }
        self._control_used = bool(disabled)
        # Plain dict subclasses would be wrapped; tf.Module tracks these lists.
        self.active = [tf.Variable(name not in disabled, trainable=False, name=f"{name}_active") for name in names]
        self.loss_weights = [
            tf.Variable(self._initial_loss_weights[name], dtype=tf.float32, trainable=False,
                        name=f"{name}_loss_weight")
            for name in names
        ]
        self.learning_rate_multipliers = [
            tf.Variable(self._initial_multipliers[name], dtype=tf.float32, trainable=False,
                        name=f"{name}_learning_rate_multiplier")
            for name in names
        ]
        self.sampling_weight_variables = [
            tf.Variable(self._initial_sampling_weights[name], dtype=tf.float32, trainable=False,
                        name=f"{name}_sampling_weight")
            for name in names
        ]

    @tf.autograph.experimental.do_not_convert
    def _index(self, name: str) -> int:
        if name not in self._names:
            raise KeyError(f"No task {name!r}; tasks: {', '.join(self._names)}.")
        return self._names.index(name)

    @property
    def task_names(self) -> List[str]:
        return list(self._names)

    def enable(self, name: str) -> None:
        self.active[self._index(name)].assign(True)

    def disable(self, name: str) -> None:
        self._control_used = True
        self.active[self._index(name)].assign(False)

    def is_active(self, name: str, step: Optional[int] = None) -> bool:
        """Whether task `name` trains at `step` (read eagerly): its flag and, given a step, its window."""
        if not bool(self.active[self._index(name)].numpy()):
            return False
        if step is None or name not in self._windows:
            return True
        start, stop = self._windows[name]
        return start <= int(step) and (stop is None or int(step) < stop)

    def loop_plan(self, step: int = 0) -> LoopPlan:
        """The plan of a loop starting at global step `step` (reads the flags and multipliers eagerly)."""
        active = tuple(name for name in self._names if self.is_active(name, step))
        scaled = [name for name, multiplier in zip(self._names, self.learning_rate_multipliers)
                  if float(multiplier.numpy()) != 1.0]
        return LoopPlan(active, frozenset(scaled))

    def steps_until_change(self, step: int) -> Optional[int]:
        """Steps from `step` until a task's step window opens or closes; None if none will."""
        boundaries = [edge for start, stop in self._windows.values() for edge in (start, stop)
                      if edge is not None and edge > int(step)]
        return min(boundaries) - int(step) if boundaries else None

    def active_tasks(self) -> List[str]:
        """The names of the enabled tasks (read eagerly)."""
        return [name for name, flag in zip(self._names, self.active) if bool(flag.numpy())]

    @property
    def sampling_weights(self) -> Dict[str, float]:
        """The current sampling weights (read eagerly), in task order."""
        return {name: float(v.numpy()) for name, v in zip(self._names, self.sampling_weight_variables)}

    @property
    def initial_sampling_weights(self) -> Dict[str, float]:
        return dict(self._initial_sampling_weights)

    def set_sampling_weight(self, name: str, value: float) -> None:
        """Sets task `name`'s sampling weight from the next step (no retracing).

        When every active task's weight is 0, a weight-using sampler trains
        nothing at that step (as with no active task).

        Raises:
          KeyError: No such task.
          ValueError: `value` is negative or not finite.
        """
        self.sampling_weight_variables[self._index(name)].assign(
            _check_knob(value, f"sampling_weight of task {name!r}")
        )

    @tf.autograph.experimental.do_not_convert
    def sampling_weight_vector(self) -> tf.Tensor:
        """`[T]` float32: the sampling weights in task order (read in the graph)."""
        return tf.stack([v.read_value() for v in self.sampling_weight_variables])

    @property
    def initial_loss_weights(self) -> Dict[str, float]:
        return dict(self._initial_loss_weights)

    def has_schedule(self, name: str) -> bool:
        schedule = self._schedules[name]
        return schedule is not None and bool(schedule.type)

    def set_loss_weight(self, name: str, value: float) -> None:
        self.loss_weights[self._index(name)].assign(_check_knob(value, f"loss_weight of task {name!r}"))

    @tf.autograph.experimental.do_not_convert
    def loss_weight(self, name: str, step=None) -> tf.Tensor:
        """The effective loss weight at `step`: the variable times the schedule's factor."""
        weight = self.loss_weights[self._index(name)].read_value()
        if self.has_schedule(name):
            weight = weight * schedule_factor(self._schedules[name], 0 if step is None else step)
        return weight

    def set_learning_rate_multiplier(self, name: str, value: float) -> None:
        self.learning_rate_multipliers[self._index(name)].assign(
            _check_knob(value, f"learning_rate_multiplier of task {name!r}")
        )

    @tf.autograph.experimental.do_not_convert
    def learning_rate_multiplier(self, name: str) -> tf.Tensor:
        return self.learning_rate_multipliers[self._index(name)].read_value()

    def logs(self, step, loss_weights: bool, sampling_weights: bool = False) -> Dict[str, Dict[str, tf.Tensor]]:
        """The knobs worth logging, per task.

        `loss_weight` where the task's weight is not a constant 1 (and
        `loss_weights` is True: the joint trainer); `learning_rate_multiplier`
        where it is not 1; `sampling_weight` for every task when
        `sampling_weights` is True (an interleaving sampler that reads the
        weights), else where it differs from its initial value; `active` for
        every task once any task was disabled.
        """
        result = {}
        for i, name in enumerate(self._names):
            logs = {}
            if loss_weights and (self.has_schedule(name) or float(self.loss_weights[i].numpy()) != 1.0):
                logs["loss_weight"] = self.loss_weight(name, step)
            if float(self.learning_rate_multipliers[i].numpy()) != 1.0:
                logs["learning_rate_multiplier"] = self.learning_rate_multipliers[i].read_value()
            weight = self.sampling_weight_variables[i]
            if sampling_weights or float(weight.numpy()) != np.float32(self._initial_sampling_weights[name]):
                logs["sampling_weight"] = weight.read_value()
            if self._control_used:
                logs["active"] = tf.cast(self.active[i].read_value(), tf.float32)
            result[name] = logs
        return result
