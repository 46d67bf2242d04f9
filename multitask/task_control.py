"""Runtime task control: per-task knobs held in variables, and guarded updates.

`TaskControl` holds, for every task of a `MultiTask`, the knobs a run can
change between training loops without rebuilding anything:

- `active`: a boolean `tf.Variable`. The trained graph reads it (through
  `tf.cond` / `tf.switch_case`) for the tasks the loop's plan gates (see
  below), so `enable` / `disable` take effect at the next step. An optional
  step window `[start_step, stop_step)` (from config) further restricts when the task
  trains, checked against the global step inside the graph, so a task can
  join or leave at an exact step.
- `loss_weight`: a float `tf.Variable` (the joint trainer's loss weight),
  optionally multiplied by a schedule over the global step.
- `learning_rate_multiplier`: a float `tf.Variable` scaling the updates of
  the task's variables (see `UpdateGuard`).
- `sampling_weight`: a float `tf.Variable`, the interleaving sampler's weight.
  The samplers that use weights (proportional, annealing) compute their
  distribution from the variables inside the traced step, so
  `set_sampling_weight` takes effect at the next step without retracing.

All variables are tracked by the module, so a trainer's checkpoint that holds
the `TaskControl` saves and restores them.

`UpdateGuard` keeps the optimizer from touching what it must not touch: it
snapshots a group of variables (and their optimizer slots) before a step, and
afterwards scales each group's update by its multiplier, restoring the group
and its slots entirely when the multiplier is 0 (a disabled task). Restoring
is needed because stateful optimizers (Adam's moments, momentum, weight decay)
move a variable even when its gradient is zero.

That bookkeeping costs a copy of the guarded variables and a `tf.cond` per
task every step, which the common case (every task on, every multiplier 1)
does not need. The knobs only change between training loops (they are
assigned eagerly), so a trainer reads `TaskControl.loop_plan()` when a loop
starts: the tasks whose activity the loop must read in the graph (`gated`:
disabled now, or with a step window) and those whose updates it must scale
(`scaled`: multiplier not 1 now). The traced loop handles exactly those; the
others run as plain, always-on tasks. Trainers keep one traced loop per plan,
so toggling a task back and forth traces each distinct plan once, and a
multiplier that moves between values other than 1 (or a loss or sampling
weight that changes) retraces nothing.
"""
from typing import AbstractSet, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

SCHEDULE_TYPES = ("", "piecewise", "linear")


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
    """What a traced training loop must handle, fixed when the loop starts.

    Attributes:
      gated: The tasks that may be inactive during the loop (disabled now, or
        with a step window): the loop reads their activity in the graph. The
        other tasks are active throughout the loop.
      scaled: The tasks whose learning-rate multiplier is not 1 now: the loop
        scales their updates (reading the multiplier variables, so a new
        value other than 1 needs no new plan).
    """

    gated: frozenset
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

    def is_active(self, name: str, step=None) -> tf.Tensor:
        """Whether task `name` trains at `step`: its flag and its step window (a boolean tensor)."""
        flag = self.active[self._index(name)].read_value()
        if step is None or name not in self._windows:
            return flag
        start, stop = self._windows[name]
        step = tf.cast(step, tf.int64)
        inside = step >= start if stop is None else tf.logical_and(step >= start, step < stop)
        return tf.logical_and(flag, inside)

    def loop_plan(self) -> LoopPlan:
        """The plan of a loop starting now (reads the flags and multipliers eagerly)."""
        gated = [name for name, flag in zip(self._names, self.active)
                 if name in self._windows or not bool(flag.numpy())]
        scaled = [name for name, multiplier in zip(self._names, self.learning_rate_multipliers)
                  if float(multiplier.numpy()) != 1.0]
        return LoopPlan(frozenset(gated), frozenset(scaled))

    def activity(self, step, gated: AbstractSet[str]) -> Dict[str, Union[bool, tf.Tensor]]:
        """`{task: activity at step}`: `is_active` for the `gated` tasks, `True` (a Python bool) for the others."""
        return {name: self.is_active(name, step) if name in gated else True for name in self._names}

    def active_tasks(self) -> List[str]:
        """The names of the enabled tasks (read eagerly)."""
        return [name for name, flag in zip(self._names, self.active) if bool(flag.numpy())]

    def active_mask(self, step=None, gated: Optional[AbstractSet[str]] = None) -> tf.Tensor:
        """`[T]` booleans in task order: `is_active` of every task at `step`.

        With `gated` (a `LoopPlan`'s), only those tasks' flags are read; the
        others are taken as active.
        """
        activity = self.activity(step, self._names if gated is None else gated)
        return tf.stack([tf.constant(True) if flag is True else flag for flag in activity.values()])

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


def _slot_prefix(variable) -> str:
    return getattr(variable, "path", variable.name).replace("/", "_") + "_"


def optimizer_slots(optimizer, variables, all_variables) -> List[tf.Variable]:
    """The optimizer variables that belong to `variables` (Adam's moments, momenta, ...).

    Keras 3 names a slot `<variable path with "/" as "_">_<slot name>`
    (`Optimizer.add_variable_from_reference`); a slot belongs to the variable
    of `all_variables` with the longest such prefix.

    Raises:
      ValueError: Two of `all_variables` have the same path, so a slot of
        one of `variables` cannot be attributed.
    """
    wanted = {id(v) for v in variables}
    prefixes = {}
    for variable in all_variables:
        prefixes.setdefault(_slot_prefix(variable), []).append(variable)
    slots = []
    for slot in optimizer.variables:
        name = slot.name
        owners = max(((p, vs) for p, vs in prefixes.items() if name.startswith(p)),
                     key=lambda item: len(item[0]), default=(None, []))[1]
        if any(id(v) in wanted for v in owners):
            if len(owners) > 1:
                raise ValueError(
                    f"Optimizer variable {slot.path!r} may belong to any of {len(owners)} variables "
                    f"with path {owners[0].path!r}; give their layers distinct names."
                )
            slots.append(slot)
    return slots


class UpdateGuard:
    """Scales or undoes one step's updates of groups of variables.

    Call `snapshot()` before the step and `apply(before, factors)` after it,
    both in cross-replica context (outside `strategy.run`).
    """

    def __init__(self, optimizer, groups: Mapping[str, Sequence[tf.Variable]], all_variables):
        """Creates the guard.

        Args:
          optimizer: The Keras 3 optimizer (built).
          groups: `{group: variables}`; a group's variables and their
            optimizer slots are guarded together.
          all_variables: Every variable the optimizer updates (to attribute slots).
        """
        self._groups = {name: list(variables) for name, variables in groups.items() if variables}
        self._slots = {
            name: optimizer_slots(optimizer, variables, all_variables) for name, variables in self._groups.items()
        }

    def snapshot(self, groups: Iterable[str]) -> Dict[str, List[tf.Tensor]]:
        """Copies the variables and slots of `groups` (those without variables are left out)."""
        return {
            name: [tf.identity(v) for v in self._groups[name] + self._slots[name]]
            for name in groups if name in self._groups
        }

    def apply(self, before, factors: Mapping[str, tf.Tensor]) -> None:
        """Makes the update of each group in `before` `factor` times the optimizer's.

        A factor of 0 restores the group's variables and slots to `before`;
        a factor of 1 leaves the step as the optimizer made it.
        """
        for name, saved in before.items():
            factor = tf.cast(factors[name], tf.float32)
            variables = self._groups[name]
            slots = self._slots[name]

            def scale(variables=variables, saved=saved, slots=slots, factor=factor):
                for variable, old in zip(variables, saved):
                    f = tf.cast(factor, variable.dtype)
                    variable.assign(old + f * (tf.identity(variable) - old))
                restore = tf.equal(factor, 0.0)
                for slot, old in zip(slots, saved[len(variables):]):
                    slot.assign(tf.where(restore, old, tf.identity(slot)))
                return tf.constant(True)

            tf.cond(tf.not_equal(factor, 1.0), scale, lambda: tf.constant(False))
