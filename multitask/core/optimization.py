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

This module holds `OptimizerFactory` and `create_optimizer` (which adds loss
scaling for float16). The per-type builders they dispatch to live in
`lr_builders` (learning rates and warmups) and `optimizer_builders`
(optimizers); the schedules Keras 3 lacks are in `lr_schedule`.
"""
import math
import numbers
from typing import Any, Callable, Mapping, Optional, Union

import keras

from official.core import config_definitions
from official.modeling.optimization.configs import optimization_config

from multitask import overrides

from multitask.core import lr_builders
from multitask.core import lr_schedule
from multitask.core import optimizer_builders

OptimizationConfig = config_definitions.OptimizationConfig
RuntimeConfig = config_definitions.RuntimeConfig
LearningRateSchedule = lr_schedule.LearningRateSchedule
LearningRate = lr_schedule.LearningRate

# Where the optimization config sits in an experiment config; error messages
# name fields from here so they can be pasted into --params_override.
_PREFIX = "trainer.optimizer_config"

SUPPORTED_OPTIMIZERS = tuple(sorted(optimizer_builders.OPTIMIZERS))
SUPPORTED_LEARNING_RATES = tuple(sorted(lr_builders.LEARNING_RATES))
SUPPORTED_WARMUPS = tuple(sorted(lr_builders.WARMUPS))
overrides.support_only(optimization_config.OptimizerConfig, SUPPORTED_OPTIMIZERS)
overrides.support_only(optimization_config.LrConfig, SUPPORTED_LEARNING_RATES)
overrides.support_only(optimization_config.WarmupConfig, SUPPORTED_WARMUPS)


def _check_type(value: Optional[str], field: str, supported) -> str:
    """Returns `value` if it is one of `supported`; raises a ValueError otherwise."""
    if value is None:
        raise ValueError(f"{field} is not set; set it to one of: {', '.join(supported)}.")
    if value not in supported:
        raise ValueError(f"{field} is {value!r}; allowed (those built with Keras 3 here): {', '.join(supported)}.")
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

    def __init__(self, config: Union[OptimizationConfig, Mapping[str, Any]], field: str = _PREFIX):
        """Initializes the factory and checks the config's types.

        Args:
          config: An `OptimizationConfig`, or a dict to build one from.
          field: Where `config` sits in the experiment config; errors name
            fields under it.

        Raises:
          ValueError: If `optimizer.type` or `learning_rate.type` is unset or
            unsupported, `warmup.type` is unsupported, or `ema` is set.
        """
        if isinstance(config, Mapping):
            config = OptimizationConfig(config)
        self._config = config
        self._field = field
        self._optimizer_type = _check_type(config.optimizer.type, f"{field}.optimizer.type", SUPPORTED_OPTIMIZERS)
        self._lr_type = _check_type(config.learning_rate.type, f"{field}.learning_rate.type",
                                    SUPPORTED_LEARNING_RATES)
        self._warmup_type = config.warmup.type
        if self._warmup_type is not None:
            _check_type(self._warmup_type, f"{field}.warmup.type", SUPPORTED_WARMUPS)
        if config.ema is not None:
            raise ValueError(
                f"{field}.ema is set, but Model Garden's ExponentialMovingAverage optimizer "
                f"has no Keras 3 equivalent here; set {field}.ema to None."
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
        lr = lr_builders.LEARNING_RATES[self._lr_type](self._lr_config, f"{self._field}.learning_rate.{self._lr_type}")
        if self._warmup_config is not None:
            lr = lr_builders.WARMUPS[self._warmup_type](
                lr, self._warmup_config, f"{self._field}.warmup.{self._warmup_type}"
            )
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
        optimizer = optimizer_builders.OPTIMIZERS[self._optimizer_type](
            self._optimizer_config, lr, f"{self._field}.optimizer.{self._optimizer_type}"
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
