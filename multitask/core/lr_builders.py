"""Model Garden's `learning_rate` and `warmup` configs, built into Keras 3 schedules.

`LEARNING_RATES` maps each supported `learning_rate.type` to a builder
`(cfg, field) -> float or LearningRateSchedule`, and `WARMUPS` each supported
`warmup.type` to a builder `(learning_rate, cfg, field) -> LearningRateSchedule`
that wraps the rate in its warmup. `cfg` is the selected one-of config (e.g.
`learning_rate.stepwise`), and `field` is where it sits in the experiment
config (e.g. `trainer.optimizer_config.learning_rate.stepwise`), so that a
missing value raises a `ValueError` naming a field that can be pasted into
`--params_override`.

`constant` gives a float; `stepwise`, `exponential`, `polynomial` and
`cosine` give Keras 3's own schedules, shifted by `offset` (`OffsetSchedule`);
the power decays and the warmups are `lr_schedule`'s. `OptimizerFactory` (in
`optimization`) is what uses them.
"""
from typing import Callable, Dict

import keras

from multitask.core import lr_schedule

LearningRateSchedule = lr_schedule.LearningRateSchedule
LearningRate = lr_schedule.LearningRate


def _require(cfg, field: str, *names: str):
    """Raises a ValueError naming the first of `names` that `cfg` leaves unset."""
    for name in names:
        if getattr(cfg, name) is None:
            raise ValueError(f"{field}.{name} must be set.")


def _with_offset(schedule: LearningRateSchedule, offset: int) -> LearningRateSchedule:
    """Returns `schedule` shifted by `offset` steps (`schedule` itself when 0)."""
    return lr_schedule.OffsetSchedule(schedule, offset, name=f"{schedule.name}WithOffset") if offset else schedule


def _constant_lr(cfg, field):
    """A constant rate: `cfg.learning_rate` as a float."""
    _require(cfg, field, "learning_rate")
    return float(cfg.learning_rate)


def _stepwise_lr(cfg, field):
    """Keras 3's `PiecewiseConstantDecay`, shifted by `cfg.offset`."""
    _require(cfg, field, "boundaries", "values")
    if len(cfg.values) != len(cfg.boundaries) + 1:
        raise ValueError(
            f"{field}.values needs one more entry than boundaries; got "
            f"{len(cfg.values)} values for {len(cfg.boundaries)} boundaries."
        )
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=list(cfg.boundaries), values=[float(v) for v in cfg.values], name=cfg.name
    )
    return _with_offset(schedule, cfg.offset)


def _exponential_lr(cfg, field):
    """Keras 3's `ExponentialDecay`, shifted by `cfg.offset`."""
    _require(cfg, field, "initial_learning_rate", "decay_steps", "decay_rate")
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=float(cfg.initial_learning_rate),
        decay_steps=cfg.decay_steps,
        decay_rate=float(cfg.decay_rate),
        staircase=bool(cfg.staircase),
        name=cfg.name,
    )
    return _with_offset(schedule, cfg.offset)


def _polynomial_lr(cfg, field):
    """Keras 3's `PolynomialDecay`, shifted by `cfg.offset`."""
    _require(cfg, field, "initial_learning_rate", "decay_steps")
    schedule = keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=float(cfg.initial_learning_rate),
        decay_steps=cfg.decay_steps,
        end_learning_rate=float(cfg.end_learning_rate),
        power=float(cfg.power),
        cycle=bool(cfg.cycle),
        name=cfg.name,
    )
    return _with_offset(schedule, cfg.offset)


def _cosine_lr(cfg, field):
    """Keras 3's `CosineDecay`, shifted by `cfg.offset`."""
    _require(cfg, field, "initial_learning_rate", "decay_steps")
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=float(cfg.initial_learning_rate),
        decay_steps=cfg.decay_steps,
        alpha=float(cfg.alpha),
        name=cfg.name,
    )
    return _with_offset(schedule, cfg.offset)


def _power_lr(cfg, field):
    """`lr_schedule.DirectPowerDecay`."""
    _require(cfg, field, "initial_learning_rate")
    return lr_schedule.DirectPowerDecay(float(cfg.initial_learning_rate), power=float(cfg.power), name=cfg.name)


def _power_linear_lr(cfg, field):
    """`lr_schedule.PowerAndLinearDecay`."""
    _require(cfg, field, "initial_learning_rate", "total_decay_steps")
    return lr_schedule.PowerAndLinearDecay(
        float(cfg.initial_learning_rate),
        total_decay_steps=cfg.total_decay_steps,
        power=float(cfg.power),
        linear_decay_fraction=float(cfg.linear_decay_fraction),
        offset=cfg.offset,
        name=cfg.name,
    )


def _power_with_offset_lr(cfg, field):
    """`lr_schedule.PowerDecayWithOffset`."""
    _require(cfg, field, "initial_learning_rate")
    return lr_schedule.PowerDecayWithOffset(
        float(cfg.initial_learning_rate),
        power=float(cfg.power),
        offset=cfg.offset,
        pre_offset_learning_rate=float(cfg.pre_offset_learning_rate),
        name=cfg.name,
    )


LEARNING_RATES: Dict[str, Callable[..., LearningRate]] = {
    "constant": _constant_lr,
    "stepwise": _stepwise_lr,
    "exponential": _exponential_lr,
    "polynomial": _polynomial_lr,
    "cosine": _cosine_lr,
    "power": _power_lr,
    "power_linear": _power_linear_lr,
    "power_with_offset": _power_with_offset_lr,
}


def _linear_warmup(lr, cfg, field):
    """`lr_schedule.LinearWarmup` around `lr`."""
    _require(cfg, field, "warmup_steps")
    return lr_schedule.LinearWarmup(lr, cfg.warmup_steps, float(cfg.warmup_learning_rate), name=cfg.name)


def _polynomial_warmup(lr, cfg, field):
    """`lr_schedule.PolynomialWarmUp` around `lr`."""
    _require(cfg, field, "warmup_steps")
    return lr_schedule.PolynomialWarmUp(lr, cfg.warmup_steps, power=float(cfg.power), name=cfg.name)


WARMUPS: Dict[str, Callable[..., LearningRateSchedule]] = {
    "linear": _linear_warmup,
    "polynomial": _polynomial_warmup,
}
