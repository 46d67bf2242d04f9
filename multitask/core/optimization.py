"""Model Garden's `OptimizationConfig`, built into Keras 3 optimizers.

Model Garden's `official.modeling.optimization.OptimizerFactory` builds
`tf_keras` optimizers and schedules, which cannot train Keras 3 models. This
module reads the same `OptimizationConfig` (optimizer, learning rate, warmup)
and builds `keras.optimizers.Optimizer` and
`keras.optimizers.schedules.LearningRateSchedule` objects instead, with the
same numbers: a config written for Model Garden gives the same learning rate
at every step and the same update rule wherever Keras 3 has that rule.

Supported `optimizer.type` values, and the Keras 3 class each builds:

- `sgd`, `sgd_experimental`: `keras.optimizers.SGD` (momentum, nesterov).
  Model Garden's legacy `sgd.decay` has no Keras 3 counterpart; it must be 0.
- `adam`, `adam_experimental`: `fused_adam.FusedAdam` (`keras.optimizers.Adam`
  stepping with TensorFlow's fused Adam kernel, as tf_keras did).
- `adamw` (Model Garden's BERT-style `AdamWeightDecay`): `fused_adam.FusedAdamW`,
  with `weight_decay_rate` as `weight_decay` and `gradient_clip_norm` as
  `global_clipnorm` (see `OptimizerFactory.build_optimizer` for the details).
- `adamw_experimental`: `fused_adam.FusedAdamW`.
- `rmsprop`: `keras.optimizers.RMSprop`.
- `adagrad`: `keras.optimizers.Adagrad`.
- `lamb`: `keras.optimizers.Lamb`, without weight decay or exclusion lists.
- `adafactor_keras`: `keras.optimizers.Adafactor`.

Supported `learning_rate.type` values: `constant`, `stepwise`, `exponential`,
`polynomial`, `cosine` (Keras 3's own schedules, shifted by `offset`), `power`,
`power_linear` and `power_with_offset`. Supported `warmup.type` values:
`linear` and `polynomial`. The `jit_compile` field of the `*_experimental`
configs is ignored: in Keras 3 the model's compilation decides that.

Anything else (another type, `ema`, a setting Keras 3 cannot reproduce) raises
a `ValueError` naming the field when the factory is built, before training.
"""
import math
import numbers
from typing import Any, Callable, Dict, Mapping, Optional, Union

import keras

from official.core import config_definitions

from multitask.core import fused_adam
from multitask.core import lr_schedule

OptimizationConfig = config_definitions.OptimizationConfig
RuntimeConfig = config_definitions.RuntimeConfig
LearningRateSchedule = lr_schedule.LearningRateSchedule
LearningRate = lr_schedule.LearningRate

# Where the optimization config sits in an experiment config; error messages
# name fields from here so they can be pasted into --params_override.
_PREFIX = "trainer.optimizer_config"
_CLIP_FIELDS = ("clipnorm", "clipvalue", "global_clipnorm")


def _require(cfg, field: str, *names: str):
    """Raises a ValueError naming the first of `names` that `cfg` leaves unset."""
    for name in names:
        if getattr(cfg, name) is None:
            raise ValueError(f"{_PREFIX}.{field}.{name} must be set.")


def _with_offset(schedule: LearningRateSchedule, offset: int) -> LearningRateSchedule:
    return lr_schedule.OffsetSchedule(schedule, offset, name=f"{schedule.name}WithOffset") if offset else schedule


def _constant_lr(cfg, field):
    _require(cfg, field, "learning_rate")
    return float(cfg.learning_rate)


def _stepwise_lr(cfg, field):
    _require(cfg, field, "boundaries", "values")
    if len(cfg.values) != len(cfg.boundaries) + 1:
        raise ValueError(
            f"{_PREFIX}.{field}.values needs one more entry than boundaries; got "
            f"{len(cfg.values)} values for {len(cfg.boundaries)} boundaries."
        )
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=list(cfg.boundaries), values=[float(v) for v in cfg.values], name=cfg.name
    )
    return _with_offset(schedule, cfg.offset)


def _exponential_lr(cfg, field):
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
    _require(cfg, field, "initial_learning_rate", "decay_steps")
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=float(cfg.initial_learning_rate),
        decay_steps=cfg.decay_steps,
        alpha=float(cfg.alpha),
        name=cfg.name,
    )
    return _with_offset(schedule, cfg.offset)


def _power_lr(cfg, field):
    _require(cfg, field, "initial_learning_rate")
    return lr_schedule.DirectPowerDecay(float(cfg.initial_learning_rate), power=float(cfg.power), name=cfg.name)


def _power_linear_lr(cfg, field):
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
    _require(cfg, field, "initial_learning_rate")
    return lr_schedule.PowerDecayWithOffset(
        float(cfg.initial_learning_rate),
        power=float(cfg.power),
        offset=cfg.offset,
        pre_offset_learning_rate=float(cfg.pre_offset_learning_rate),
        name=cfg.name,
    )


_LR_BUILDERS: Dict[str, Callable[..., LearningRate]] = {
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
    _require(cfg, field, "warmup_steps")
    return lr_schedule.LinearWarmup(lr, cfg.warmup_steps, float(cfg.warmup_learning_rate), name=cfg.name)


def _polynomial_warmup(lr, cfg, field):
    _require(cfg, field, "warmup_steps")
    return lr_schedule.PolynomialWarmUp(lr, cfg.warmup_steps, power=float(cfg.power), name=cfg.name)


_WARMUP_BUILDERS: Dict[str, Callable[..., LearningRateSchedule]] = {
    "linear": _linear_warmup,
    "polynomial": _polynomial_warmup,
}


def _clip_kwargs(cfg, field: str, **overrides) -> Dict[str, float]:
    """Returns the clipping arguments `cfg` sets, refusing more than one."""
    kwargs = {name: getattr(cfg, name) for name in _CLIP_FIELDS if getattr(cfg, name) is not None}
    kwargs.update({name: value for name, value in overrides.items() if value is not None})
    if len(kwargs) > 1:
        raise ValueError(
            f"Keras 3 optimizers take at most one of clipnorm, clipvalue and global_clipnorm, "
            f"but {_PREFIX}.{field} sets {', '.join(sorted(kwargs))}."
        )
    return {name: float(value) for name, value in kwargs.items()}


def _sgd(cfg, lr, field):
    if getattr(cfg, "decay", 0.0):
        raise ValueError(
            f"{_PREFIX}.{field}.decay={cfg.decay} is the legacy tf_keras learning-rate decay, "
            "which Keras 3 optimizers do not have; set it to 0 and use a learning_rate "
            "schedule instead."
        )
    return keras.optimizers.SGD(
        learning_rate=lr,
        momentum=float(cfg.momentum),
        nesterov=bool(cfg.nesterov),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


def _adam(cfg, lr, field):
    return fused_adam.FusedAdam(
        learning_rate=lr,
        beta_1=float(cfg.beta_1),
        beta_2=float(cfg.beta_2),
        epsilon=float(cfg.epsilon),
        amsgrad=bool(cfg.amsgrad),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


def _adamw(cfg, lr, field):
    if cfg.include_in_weight_decay and cfg.exclude_from_weight_decay and cfg.weight_decay_rate:
        raise ValueError(
            f"{_PREFIX}.{field}.include_in_weight_decay overrides exclude_from_weight_decay in "
            "Model Garden, which Keras 3's AdamW cannot express; set only "
            f"{_PREFIX}.{field}.exclude_from_weight_decay."
        )
    # Model Garden clips to gradient_clip_norm inside apply_gradients and then
    # applies the base global_clipnorm: together, a clip to the smaller norm.
    norms = [n for n in (cfg.global_clipnorm, cfg.gradient_clip_norm) if n is not None and n > 0]
    if norms and (cfg.clipnorm is not None or cfg.clipvalue is not None):
        raise ValueError(
            f"{_PREFIX}.{field}.gradient_clip_norm={cfg.gradient_clip_norm} becomes Keras 3's "
            "global_clipnorm, which cannot be combined with clipnorm or clipvalue; set "
            f"{_PREFIX}.{field}.gradient_clip_norm to 0 to use those."
        )
    clip = _clip_kwargs(cfg, field, global_clipnorm=min(norms) if norms else None)
    optimizer = fused_adam.FusedAdamW(
        learning_rate=lr,
        weight_decay=float(cfg.weight_decay_rate),
        beta_1=float(cfg.beta_1),
        beta_2=float(cfg.beta_2),
        epsilon=float(cfg.epsilon),
        amsgrad=bool(cfg.amsgrad),
        name=cfg.name,
        **clip,
    )
    if cfg.exclude_from_weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(cfg.exclude_from_weight_decay))
    return optimizer


def _adamw_experimental(cfg, lr, field):
    return fused_adam.FusedAdamW(
        learning_rate=lr,
        weight_decay=float(cfg.weight_decay),
        beta_1=float(cfg.beta_1),
        beta_2=float(cfg.beta_2),
        epsilon=float(cfg.epsilon),
        amsgrad=bool(cfg.amsgrad),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


def _rmsprop(cfg, lr, field):
    return keras.optimizers.RMSprop(
        learning_rate=lr,
        rho=float(cfg.rho),
        momentum=float(cfg.momentum),
        epsilon=float(cfg.epsilon),
        centered=bool(cfg.centered),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


def _adagrad(cfg, lr, field):
    return keras.optimizers.Adagrad(
        learning_rate=lr,
        initial_accumulator_value=float(cfg.initial_accumulator_value),
        epsilon=float(cfg.epsilon),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


def _lamb(cfg, lr, field):
    for name in ("weight_decay_rate", "exclude_from_weight_decay", "exclude_from_layer_adaptation"):
        if getattr(cfg, name):
            raise ValueError(
                f"{_PREFIX}.{field}.{name}={getattr(cfg, name)!r} is not supported: Model Garden's "
                "LAMB adds weight decay inside the trust ratio and can skip layer adaptation, "
                "which keras.optimizers.Lamb cannot reproduce. Leave it unset, or use "
                "optimizer.type 'adamw'."
            )
    return keras.optimizers.Lamb(
        learning_rate=lr,
        beta_1=float(cfg.beta_1),
        beta_2=float(cfg.beta_2),
        epsilon=float(cfg.epsilon),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


def _adafactor_keras(cfg, lr, field):
    # Like Model Garden, the factory's learning rate replaces cfg.learning_rate.
    return keras.optimizers.Adafactor(
        learning_rate=lr,
        beta_2_decay=float(cfg.beta_2_decay),
        epsilon_1=float(cfg.epsilon_1),
        epsilon_2=float(cfg.epsilon_2),
        clip_threshold=float(cfg.clip_threshold),
        relative_step=bool(cfg.relative_step),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


_OPTIMIZER_BUILDERS: Dict[str, Callable[..., keras.optimizers.Optimizer]] = {
    "sgd": _sgd,
    "sgd_experimental": _sgd,
    "adam": _adam,
    "adam_experimental": _adam,
    "adamw": _adamw,
    "adamw_experimental": _adamw_experimental,
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
    "lamb": _lamb,
    "adafactor_keras": _adafactor_keras,
}

SUPPORTED_OPTIMIZERS = tuple(sorted(_OPTIMIZER_BUILDERS))
SUPPORTED_LEARNING_RATES = tuple(sorted(_LR_BUILDERS))
SUPPORTED_WARMUPS = tuple(sorted(_WARMUP_BUILDERS))


def _check_type(value: Optional[str], field: str, supported) -> str:
    """Returns `value` if it is one of `supported`; raises a ValueError otherwise."""
    if value is None:
        raise ValueError(f"{_PREFIX}.{field} is not set; set it to one of: {', '.join(supported)}.")
    if value not in supported:
        raise ValueError(
            f"{_PREFIX}.{field}={value!r} is not supported with Keras 3; supported: "
            f"{', '.join(supported)}."
        )
    return value


class OptimizerFactory:
    """Builds a Keras 3 learning rate and optimizer from an `OptimizationConfig`.

    Used like Model Garden's factory of the same name:

    ```python
    factory = OptimizerFactory(OptimizationConfig({
        "optimizer": {"type": "sgd", "sgd": {"momentum": 0.9}},
        "learning_rate": {"type": "stepwise",
                          "stepwise": {"boundaries": [10000, 20000],
                                       "values": [0.1, 0.01, 0.001]}},
        "warmup": {"type": "linear", "linear": {"warmup_steps": 500}},
    }))
    optimizer = factory.build_optimizer(factory.build_learning_rate())
    ```

    The types are checked when the factory is built, so a bad config fails
    before any model or data is built.
    """

    def __init__(self, config: Union[OptimizationConfig, Mapping[str, Any]]):
        """Initializes the factory and checks the config's types.

        Args:
          config: An `OptimizationConfig`, or a dict to build one from.

        Raises:
          ValueError: If `optimizer.type` or `learning_rate.type` is unset or
            unsupported, `warmup.type` is unsupported, or `ema` is set.
        """
        if isinstance(config, Mapping):
            config = OptimizationConfig(config)
        self._config = config
        self._optimizer_type = _check_type(config.optimizer.type, "optimizer.type", SUPPORTED_OPTIMIZERS)
        self._lr_type = _check_type(config.learning_rate.type, "learning_rate.type", SUPPORTED_LEARNING_RATES)
        self._warmup_type = config.warmup.type
        if self._warmup_type is not None:
            _check_type(self._warmup_type, "warmup.type", SUPPORTED_WARMUPS)
        if config.ema is not None:
            raise ValueError(
                f"{_PREFIX}.ema is set, but Model Garden's ExponentialMovingAverage optimizer "
                f"has no Keras 3 equivalent here; set {_PREFIX}.ema to None."
            )
        self._optimizer_config = config.optimizer.get()
        self._lr_config = config.learning_rate.get()
        self._warmup_config = config.warmup.get() if self._warmup_type is not None else None

    def build_learning_rate(self) -> LearningRate:
        """Builds the learning rate, with warmup if the config has one.

        Returns:
          A float for a constant rate without warmup, otherwise a Keras 3
          `LearningRateSchedule` of the optimizer's step.

        Raises:
          ValueError: If a field the schedule needs is unset.
        """
        lr = _LR_BUILDERS[self._lr_type](self._lr_config, f"learning_rate.{self._lr_type}")
        if self._warmup_config is not None:
            lr = _WARMUP_BUILDERS[self._warmup_type](lr, self._warmup_config, f"warmup.{self._warmup_type}")
        return lr

    def build_optimizer(
        self,
        lr: LearningRate,
        postprocessor: Optional[Callable[[keras.optimizers.Optimizer], keras.optimizers.Optimizer]] = None,
    ) -> keras.optimizers.Optimizer:
        """Builds the optimizer.

        Fields map onto the Keras 3 class's arguments by name, with these
        Model Garden `adamw` (`AdamWeightDecay`) translations:

        - `weight_decay_rate` becomes `weight_decay` (the same decoupled
          update, `var -= lr * weight_decay * var`).
        - `exclude_from_weight_decay` goes to
          `optimizer.exclude_from_weight_decay(var_names=...)`. Keras 3 matches
          these regular expressions against a variable's short `name`
          (`"kernel"`, `"bias"`, `"gamma"`), not against a scoped name such as
          tf_keras's `"encoder/layer_norm/gamma:0"`, so patterns that name a
          layer (`"LayerNorm"`) match nothing; name the variables instead.
        - `include_in_weight_decay` only matters in Model Garden when
          `exclude_from_weight_decay` is also set (it overrides it); that
          combination is refused, and on its own it is a no-op, as there.
        - `gradient_clip_norm > 0` becomes `global_clipnorm`; when
          `global_clipnorm` is also set, the smaller norm is used, which is what
          Model Garden's two successive clips amount to.

        Args:
          lr: A float or a Keras 3 `LearningRateSchedule`, usually from
            `build_learning_rate`.
          postprocessor: An optional function that takes the optimizer and
            returns the optimizer to use.

        Returns:
          A `keras.optimizers.Optimizer`.

        Raises:
          ValueError: If the optimizer config sets something Keras 3 cannot do
            as Model Garden does.
          TypeError: If `postprocessor` returns something else than a Keras 3
            optimizer.
        """
        optimizer = _OPTIMIZER_BUILDERS[self._optimizer_type](
            self._optimizer_config, lr, f"optimizer.{self._optimizer_type}"
        )
        if postprocessor is not None:
            optimizer = postprocessor(optimizer)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(f"OptimizerFactory.build_optimizer got a non-Keras-3 optimizer: {optimizer!r}")
        return optimizer


def _uses_float16(runtime_config: Optional[RuntimeConfig]) -> bool:
    if runtime_config is not None and runtime_config.mixed_precision_dtype == "float16":
        return True
    return keras.mixed_precision.global_policy().compute_dtype == "float16"


def _initial_scale(loss_scale) -> Optional[float]:
    """Returns the initial loss scale `runtime.loss_scale` asks for, or None."""
    if loss_scale is None or loss_scale == "dynamic":
        return None
    scale = None
    if isinstance(loss_scale, numbers.Real) and not isinstance(loss_scale, bool):
        scale = float(loss_scale)
    elif isinstance(loss_scale, str):
        try:
            scale = float(loss_scale)
        except ValueError:
            pass
    if scale is None or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"runtime.loss_scale={loss_scale!r} must be None, 'dynamic' or a positive number.")
    return scale


def create_optimizer(
    optimizer_config: Union[OptimizationConfig, Mapping[str, Any]],
    runtime_config: Optional[RuntimeConfig] = None,
) -> keras.optimizers.Optimizer:
    """Builds the learning rate and the Keras 3 optimizer a run trains with.

    The optimizer is wrapped in a `keras.optimizers.LossScaleOptimizer` when
    `runtime_config.mixed_precision_dtype` is `"float16"` or the global Keras
    dtype policy computes in float16. `runtime_config.loss_scale` of None or
    `"dynamic"` gives Keras's default dynamic loss scaling. A number is the
    *initial* scale: Keras 3's `LossScaleOptimizer` has no fixed mode (it
    refuses `dynamic=False`), so unlike Model Garden's fixed scale it still
    halves on overflow and grows after stable steps.

    Args:
      optimizer_config: An `OptimizationConfig` (or a dict to build one from).
      runtime_config: The run's `RuntimeConfig`, or None.

    Returns:
      A `keras.optimizers.Optimizer`, possibly a `LossScaleOptimizer`.

    Raises:
      ValueError: If the config asks for something unsupported, naming the
        field and the supported values.
    """
    factory = OptimizerFactory(optimizer_config)
    loss_scale = runtime_config.loss_scale if runtime_config is not None else None
    initial_scale = _initial_scale(loss_scale)
    optimizer = factory.build_optimizer(factory.build_learning_rate())
    if not _uses_float16(runtime_config):
        return optimizer
    if initial_scale is None:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=initial_scale)
