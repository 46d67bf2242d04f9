"""Model Garden's `optimizer` configs, built into Keras 3 optimizers, one builder per type.

`OPTIMIZERS` maps each supported `optimizer.type` to a builder
`(cfg, learning_rate, field) -> keras.optimizers.Optimizer`. `cfg` is the
selected one-of config (e.g. `optimizer.adamw`), and `field` is where it sits
in the experiment config (e.g. `trainer.optimizer_config.optimizer.adamw`),
so that a setting Keras 3 cannot reproduce raises a `ValueError` naming a
field that can be pasted into `--params_override`.

Fields map onto the Keras 3 class's arguments by name; the translations
(Model Garden's `adamw`, LAMB's weight decay, the legacy SGD `decay`, at most
one clipping argument) are written down in `optimization.OptimizerFactory`
and in the builders below. The factory is what uses them.
"""
from typing import Callable, Dict

import keras

from multitask.core import fused_adam

_CLIP_FIELDS = ("clipnorm", "clipvalue", "global_clipnorm")


def _clip_kwargs(cfg, field: str, **overrides) -> Dict[str, float]:
    """Returns the clipping arguments `cfg` sets, refusing more than one."""
    kwargs = {name: getattr(cfg, name) for name in _CLIP_FIELDS if getattr(cfg, name) is not None}
    kwargs.update({name: value for name, value in overrides.items() if value is not None})
    if len(kwargs) > 1:
        raise ValueError(
            f"Keras 3 optimizers take at most one of clipnorm, clipvalue and global_clipnorm, "
            f"but {field} sets {', '.join(sorted(kwargs))}."
        )
    return {name: float(value) for name, value in kwargs.items()}


def _sgd(cfg, lr, field):
    """`keras.optimizers.SGD`; the legacy tf_keras `decay` must be 0."""
    if getattr(cfg, "decay", 0.0):
        raise ValueError(
            f"{field}.decay={cfg.decay} is the legacy tf_keras learning-rate decay, "
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
    """`fused_adam.FusedAdam`: Keras 3's Adam stepping with the fused kernel."""
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
    """Model Garden's BERT-style `AdamWeightDecay` as `fused_adam.FusedAdamW`."""
    if cfg.include_in_weight_decay and cfg.exclude_from_weight_decay and cfg.weight_decay_rate:
        raise ValueError(
            f"{field}.include_in_weight_decay overrides exclude_from_weight_decay in "
            "Model Garden, which Keras 3's AdamW cannot express; set only "
            f"{field}.exclude_from_weight_decay."
        )
    # Model Garden clips to gradient_clip_norm inside apply_gradients and then
    # applies the base global_clipnorm: together, a clip to the smaller norm.
    norms = [n for n in (cfg.global_clipnorm, cfg.gradient_clip_norm) if n is not None and n > 0]
    if norms and (cfg.clipnorm is not None or cfg.clipvalue is not None):
        raise ValueError(
            f"{field}.gradient_clip_norm={cfg.gradient_clip_norm} becomes Keras 3's "
            "global_clipnorm, which cannot be combined with clipnorm or clipvalue; set "
            f"{field}.gradient_clip_norm to 0 to use those."
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
    """`fused_adam.FusedAdamW` with Keras' own `weight_decay` field."""
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
    """`keras.optimizers.RMSprop`."""
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
    """`keras.optimizers.Adagrad`."""
    return keras.optimizers.Adagrad(
        learning_rate=lr,
        initial_accumulator_value=float(cfg.initial_accumulator_value),
        epsilon=float(cfg.epsilon),
        name=cfg.name,
        **_clip_kwargs(cfg, field),
    )


def _lamb(cfg, lr, field):
    """`keras.optimizers.Lamb`, refusing Model Garden's weight decay and exclusion lists."""
    for name in ("weight_decay_rate", "exclude_from_weight_decay", "exclude_from_layer_adaptation"):
        if getattr(cfg, name):
            raise ValueError(
                f"{field}.{name}={getattr(cfg, name)!r} is not supported: Model Garden's "
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
    """`keras.optimizers.Adafactor`."""
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


OPTIMIZERS: Dict[str, Callable[..., keras.optimizers.Optimizer]] = {
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
