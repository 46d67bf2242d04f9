"""Learning-rate schedules of Model Garden's `lr_schedule`, as Keras 3 schedules.

Keras 3 has constant, piecewise-constant, exponential, polynomial and cosine
schedules; these add what Model Garden's configs also need: a step `offset`,
linear and polynomial warmup, and the power decays. Each is a small
`keras.optimizers.schedules.LearningRateSchedule` with `get_config`, registered
for Keras serialization under the "multitask" package.
"""
from typing import Any, Dict, Mapping, Optional, Union

import keras
from keras import ops

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule
LearningRate = Union[float, LearningRateSchedule]


def _evaluate(learning_rate: LearningRate, step):
    """Returns `learning_rate` at `step` as a float32 tensor."""
    if isinstance(learning_rate, LearningRateSchedule):
        return ops.cast(learning_rate(step), "float32")
    return ops.convert_to_tensor(learning_rate, dtype="float32")


def _serialize(learning_rate: LearningRate):
    """Returns a float, or the Keras serialization of a schedule."""
    if isinstance(learning_rate, LearningRateSchedule):
        return keras.optimizers.schedules.serialize(learning_rate)
    return float(learning_rate)


def _deserialize(learning_rate) -> LearningRate:
    """Inverts `_serialize`."""
    if isinstance(learning_rate, Mapping):
        return keras.optimizers.schedules.deserialize(dict(learning_rate))
    return learning_rate


@keras.saving.register_keras_serializable(package="multitask")
class OffsetSchedule(LearningRateSchedule):
    """Shifts a schedule in time: `OffsetSchedule(s, offset)(step) == s(step - offset)`.

    Stands in for Model Garden's `PiecewiseConstantDecayWithOffset`,
    `ExponentialDecayWithOffset`, `PolynomialDecayWithOffset` and
    `CosineDecayWithOffset`: like them, it passes the shifted step as float32,
    so steps before `offset` reach the wrapped schedule as negative numbers.
    """

    def __init__(self, schedule: LearningRateSchedule, offset: int = 0, name: str = "Offset"):
        """Initializes the schedule.

        Args:
          schedule: The Keras 3 schedule to shift.
          offset: The number of steps to subtract before calling `schedule`.
          name: The name of the schedule.
        """
        super().__init__()
        self.schedule = schedule
        self.offset = offset
        self.name = name

    def __call__(self, step):
        return self.schedule(ops.cast(step, "float32") - float(self.offset))

    def get_config(self) -> Dict[str, Any]:
        return {"schedule": _serialize(self.schedule), "offset": self.offset, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _deserialize(config["schedule"])
        return cls(**config)


class _Warmup(LearningRateSchedule):
    """A warmup into another schedule: `_warmup` below `warmup_steps`, then `after(step)`."""

    def __init__(self, after_warmup_lr_sched: LearningRate, warmup_steps: int, name: Optional[str]):
        super().__init__()
        self.after_warmup_lr_sched = after_warmup_lr_sched
        self.warmup_steps = warmup_steps
        self.name = name

    def _warmup(self, step, warmup_steps: float, end):
        """The warmup rate at float32 `step`, reaching `end` = after(warmup_steps)."""
        raise NotImplementedError

    def __call__(self, step):
        after = _evaluate(self.after_warmup_lr_sched, step)
        if self.warmup_steps <= 0:
            return after
        step = ops.cast(step, "float32")
        warmup_steps = float(self.warmup_steps)
        end = _evaluate(self.after_warmup_lr_sched, warmup_steps)
        return ops.where(step < warmup_steps, self._warmup(step, warmup_steps, end), after)

    def get_config(self) -> Dict[str, Any]:
        return {
            "after_warmup_lr_sched": _serialize(self.after_warmup_lr_sched),
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["after_warmup_lr_sched"] = _deserialize(config["after_warmup_lr_sched"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="multitask")
class LinearWarmup(_Warmup):
    """Linear warmup into another schedule (Model Garden's `LinearWarmup`).

    For `step < warmup_steps` the rate is
    `warmup_learning_rate + step / warmup_steps * (after(warmup_steps) - warmup_learning_rate)`;
    from `warmup_steps` on it is `after(step)`, the wrapped schedule at the
    unshifted step.
    """

    def __init__(
        self,
        after_warmup_lr_sched: LearningRate,
        warmup_steps: int,
        warmup_learning_rate: float = 0.0,
        name: Optional[str] = "linear",
    ):
        """Initializes the schedule.

        Args:
          after_warmup_lr_sched: The schedule (or constant rate) after warmup.
          warmup_steps: The number of warmup steps; 0 means no warmup.
          warmup_learning_rate: The rate at step 0.
          name: The name of the schedule.
        """
        super().__init__(after_warmup_lr_sched, warmup_steps, name)
        self.warmup_learning_rate = warmup_learning_rate

    def _warmup(self, step, warmup_steps, end):
        start = float(self.warmup_learning_rate)
        return start + step / warmup_steps * (end - start)

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), warmup_learning_rate=self.warmup_learning_rate)


@keras.saving.register_keras_serializable(package="multitask")
class PolynomialWarmUp(_Warmup):
    """Polynomial warmup into another schedule (Model Garden's `PolynomialWarmUp`).

    For `step < warmup_steps` the rate is
    `after(warmup_steps) * (max(step, 1) / warmup_steps) ** power`; from
    `warmup_steps` on it is `after(step)`.
    """

    def __init__(
        self,
        after_warmup_lr_sched: LearningRate,
        warmup_steps: int,
        power: float = 1.0,
        name: Optional[str] = "polynomial",
    ):
        """Initializes the schedule.

        Args:
          after_warmup_lr_sched: The schedule (or constant rate) after warmup.
          warmup_steps: The number of warmup steps; 0 means no warmup.
          power: The power of the warmup polynomial.
          name: The name of the schedule.
        """
        super().__init__(after_warmup_lr_sched, warmup_steps, name)
        self.power = power

    def _warmup(self, step, warmup_steps, end):
        # Step 0 counts as step 1, so that a negative power stays finite.
        fraction = ops.maximum(step, 1.0) / warmup_steps
        return end * ops.power(fraction, float(self.power))

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), power=self.power)


@keras.saving.register_keras_serializable(package="multitask")
class DirectPowerDecay(LearningRateSchedule):
    """`initial_learning_rate * max(step, 1) ** power` (Model Garden's `DirectPowerDecay`)."""

    def __init__(self, initial_learning_rate: float, power: float = 1.0, name: str = "DirectPowerDecay"):
        """Initializes the schedule.

        Args:
          initial_learning_rate: The rate at steps 0 and 1.
          power: The exponent; -0.5 gives inverse square root decay.
          name: The name of the schedule.
        """
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.power = power
        self.name = name

    def __call__(self, step):
        step = ops.maximum(ops.cast(step, "float32"), 1.0)
        return float(self.initial_learning_rate) * ops.power(step, float(self.power))

    def get_config(self) -> Dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "power": self.power, "name": self.name}


@keras.saving.register_keras_serializable(package="multitask")
class PowerAndLinearDecay(LearningRateSchedule):
    """Power decay, multiplied by a linear decay to 0 over its last steps.

    Model Garden's `PowerAndLinearDecay`: with `s = step - offset`, the rate is
    `initial_learning_rate * max(s, 1) ** power`, times
    `min(1, (total_decay_steps - s) / (total_decay_steps * linear_decay_fraction))`
    and clipped at 0 when that denominator is positive.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        total_decay_steps: int,
        power: float = 1.0,
        linear_decay_fraction: float = 0.1,
        offset: int = 0,
        name: str = "PowerAndLinearDecay",
    ):
        """Initializes the schedule.

        Args:
          initial_learning_rate: The rate at shifted steps 0 and 1.
          total_decay_steps: The shifted step at which the rate reaches 0.
          power: The exponent of the power decay.
          linear_decay_fraction: The fraction of `total_decay_steps`, at the
            end, over which the linear decay applies.
          offset: The number of steps to subtract first.
          name: The name of the schedule.
        """
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.total_decay_steps = total_decay_steps
        self.power = power
        self.linear_decay_fraction = linear_decay_fraction
        self.offset = offset
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32") - float(self.offset)
        lr = float(self.initial_learning_rate) * ops.power(ops.maximum(step, 1.0), float(self.power))
        linear_steps = float(self.total_decay_steps) * float(self.linear_decay_fraction)
        if linear_steps > 0:
            lr = lr * ops.minimum(1.0, (float(self.total_decay_steps) - step) / linear_steps)
            lr = ops.maximum(0.0, lr)
        return lr

    def get_config(self) -> Dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total_decay_steps": self.total_decay_steps,
            "power": self.power,
            "linear_decay_fraction": self.linear_decay_fraction,
            "offset": self.offset,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="multitask")
class PowerDecayWithOffset(LearningRateSchedule):
    """Constant, then power decay (Model Garden's `PowerDecayWithOffset`).

    The rate is `pre_offset_learning_rate` while `step <= offset`, then
    `initial_learning_rate * max(step - offset, 1) ** power`, never above
    `pre_offset_learning_rate`.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        power: float = 1.0,
        offset: int = 0,
        pre_offset_learning_rate: float = 1.0e6,
        name: str = "PowerDecayWithOffset",
    ):
        """Initializes the schedule.

        Args:
          initial_learning_rate: The rate at shifted steps 0 and 1.
          power: The exponent of the power decay.
          offset: The step after which the power decay starts.
          pre_offset_learning_rate: The rate up to `offset`, and the cap after.
          name: The name of the schedule.
        """
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.power = power
        self.offset = offset
        self.pre_offset_learning_rate = pre_offset_learning_rate
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        offset = float(self.offset)
        cap = float(self.pre_offset_learning_rate)
        decayed = float(self.initial_learning_rate) * ops.power(ops.maximum(step - offset, 1.0), float(self.power))
        return ops.minimum(ops.where(step > offset, decayed, cap), cap)

    def get_config(self) -> Dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "power": self.power,
            "offset": self.offset,
            "pre_offset_learning_rate": self.pre_offset_learning_rate,
            "name": self.name,
        }
