"""Tests for multitask.core.optimization: configs to Keras 3 optimizers."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions
from official.modeling import optimization as mg_optimization

from multitask.core import fused_adam
from multitask.core import lr_schedule
from multitask.core import optimization

SGD_01 = {"type": "sgd", "sgd": {"momentum": 0.9}}
CONSTANT_01 = {"type": "constant", "constant": {"learning_rate": 0.1}}


def make_config(optimizer=None, learning_rate=None, warmup=None, ema=None):
    params = {"optimizer": optimizer or SGD_01, "learning_rate": learning_rate or CONSTANT_01}
    if warmup is not None:
        params["warmup"] = warmup
    if ema is not None:
        params["ema"] = ema
    return mg_optimization.OptimizationConfig(params)


def build_lr(**kwargs):
    return optimization.OptimizerFactory(make_config(**kwargs)).build_learning_rate()


def lr_at(lr, steps):
    """Evaluates a schedule at int64 steps inside a tf.function, like an optimizer does."""
    step = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def value():
        return lr(step)

    values = []
    for s in steps:
        step.assign(s)
        values.append(float(value()))
    return values


@pytest.fixture
def float16_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


# Learning rates.


def test_constant_learning_rate_is_a_float():
    assert build_lr() == pytest.approx(0.1)


def test_stepwise_with_offset():
    lr = build_lr(
        learning_rate={
            "type": "stepwise",
            "stepwise": {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1], "offset": 5},
        }
    )
    # The schedule sees step - 5; boundaries are inclusive on the left piece.
    steps = [0, 15, 16, 25, 26, 100]
    assert lr_at(lr, steps) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.1, 0.1])


def test_stepwise_without_offset_is_keras_piecewise_constant():
    lr = build_lr(learning_rate={"type": "stepwise", "stepwise": {"boundaries": [3], "values": [0.2, 0.02]}})
    assert isinstance(lr, keras.optimizers.schedules.PiecewiseConstantDecay)
    assert lr_at(lr, [3, 4]) == pytest.approx([0.2, 0.02])


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_with_offset(staircase):
    lr = build_lr(
        learning_rate={
            "type": "exponential",
            "exponential": {
                "initial_learning_rate": 0.1,
                "decay_steps": 10,
                "decay_rate": 0.5,
                "staircase": staircase,
                "offset": 4,
            },
        }
    )
    steps = [4, 9, 19, 44]
    expected = []
    for s in steps:
        p = (s - 4) / 10
        expected.append(0.1 * 0.5 ** (math.floor(p) if staircase else p))
    assert lr_at(lr, steps) == pytest.approx(expected, rel=1e-5)


def test_polynomial_with_offset():
    lr = build_lr(
        learning_rate={
            "type": "polynomial",
            "polynomial": {
                "initial_learning_rate": 1.0,
                "decay_steps": 100,
                "end_learning_rate": 0.1,
                "power": 2.0,
                "offset": 10,
            },
        }
    )
    steps = [10, 35, 60, 110, 500]
    expected = [(1.0 - 0.1) * (1 - min(s - 10, 100) / 100) ** 2 + 0.1 for s in steps]
    assert lr_at(lr, steps) == pytest.approx(expected, rel=1e-5)


def test_cosine_with_offset():
    lr = build_lr(
        learning_rate={
            "type": "cosine",
            "cosine": {"initial_learning_rate": 0.4, "decay_steps": 100, "alpha": 0.1, "offset": 20},
        }
    )
    steps = [20, 45, 70, 120, 300]

    def expected(s):
        fraction = min(s - 20, 100) / 100
        return 0.4 * ((1 - 0.1) * 0.5 * (1 + math.cos(math.pi * fraction)) + 0.1)

    assert lr_at(lr, steps) == pytest.approx([expected(s) for s in steps], rel=1e-5)


def test_direct_power_decay():
    lr = build_lr(learning_rate={"type": "power", "power": {"initial_learning_rate": 2.0, "power": -0.5}})
    # Step 0 counts as step 1.
    assert lr_at(lr, [0, 1, 4, 100]) == pytest.approx([2.0, 2.0, 1.0, 0.2], rel=1e-6)


def test_power_and_linear_decay():
    lr = build_lr(
        learning_rate={
            "type": "power_linear",
            "power_linear": {
                "initial_learning_rate": 1.0,
                "total_decay_steps": 100,
                "power": -0.5,
                "linear_decay_fraction": 0.2,
                "offset": 0,
            },
        }
    )
    # Up to step 80: 1/sqrt(step); then times (100 - step) / 20; 0 from step 100.
    expected = [1.0, 1 / math.sqrt(64), 1 / math.sqrt(90) * 0.5, 0.0, 0.0]
    assert lr_at(lr, [0, 64, 90, 100, 150]) == pytest.approx(expected, rel=1e-5)


def test_power_decay_with_offset():
    lr = build_lr(
        learning_rate={
            "type": "power_with_offset",
            "power_with_offset": {
                "initial_learning_rate": 1.0,
                "power": -0.5,
                "offset": 10,
                "pre_offset_learning_rate": 0.5,
            },
        }
    )
    # 0.5 up to step 10, then 1/sqrt(step - 10) capped at 0.5.
    assert lr_at(lr, [0, 10, 11, 14, 110]) == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.1], rel=1e-5)


def test_linear_warmup_into_constant():
    lr = build_lr(warmup={"type": "linear", "linear": {"warmup_steps": 10, "warmup_learning_rate": 0.02}})
    expected = [0.02, 0.02 + 0.5 * (0.1 - 0.02), 0.02 + 0.9 * (0.1 - 0.02), 0.1, 0.1]
    assert lr_at(lr, [0, 5, 9, 10, 50]) == pytest.approx(expected, rel=1e-5)


def test_linear_warmup_into_offset_polynomial():
    lr = build_lr(
        learning_rate={
            "type": "polynomial",
            "polynomial": {
                "initial_learning_rate": 1.0,
                "decay_steps": 100,
                "end_learning_rate": 0.0,
                "offset": 10,
            },
        },
        warmup={"type": "linear", "linear": {"warmup_steps": 20, "warmup_learning_rate": 0.0}},
    )
    # The warmup ends at the wrapped schedule's value at step 20: 1 - 10/100.
    peak = 0.9
    expected = [0.0, 0.5 * peak, peak, 1.0 - 40 / 100]
    assert lr_at(lr, [0, 10, 20, 50]) == pytest.approx(expected, rel=1e-5)


def test_polynomial_warmup_into_cosine():
    lr = build_lr(
        learning_rate={"type": "cosine", "cosine": {"initial_learning_rate": 1.0, "decay_steps": 100}},
        warmup={"type": "polynomial", "polynomial": {"warmup_steps": 10, "power": 2.0}},
    )
    peak = 0.5 * (1 + math.cos(math.pi * 10 / 100))
    # Step 0 counts as step 1; from step 10 on, the cosine at the same step.
    expected = [
        peak * (1 / 10) ** 2,
        peak * (1 / 10) ** 2,
        peak * (5 / 10) ** 2,
        peak,
        0.5 * (1 + math.cos(math.pi * 0.5)),
    ]
    assert lr_at(lr, [0, 1, 5, 10, 50]) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    "learning_rate, warmup",
    [
        (
            {"type": "stepwise", "stepwise": {"boundaries": [5, 12], "values": [0.3, 0.2, 0.1], "offset": 3}},
            None,
        ),
        (
            {
                "type": "exponential",
                "exponential": {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.9, "offset": 2},
            },
            {"type": "polynomial", "polynomial": {"warmup_steps": 5, "power": 0.5}},
        ),
        (
            {"type": "cosine", "cosine": {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.2, "offset": 4}},
            {"type": "linear", "linear": {"warmup_steps": 6, "warmup_learning_rate": 0.01}},
        ),
        (
            {
                "type": "power_linear",
                "power_linear": {"initial_learning_rate": 0.1, "total_decay_steps": 20, "offset": 3},
            },
            None,
        ),
    ],
)
def test_schedules_match_model_garden(learning_rate, warmup):
    """Model Garden's own tf_keras schedules serve only as the reference here."""
    config = make_config(learning_rate=learning_rate, warmup=warmup)
    ours = optimization.OptimizerFactory(config).build_learning_rate()
    reference = mg_optimization.OptimizerFactory(config).build_learning_rate()
    steps = list(range(0, 40, 3))
    expected = [float(reference(tf.constant(s, tf.int64))) for s in steps]
    assert lr_at(ours, steps) == pytest.approx(expected, rel=1e-5, abs=1e-8)


def test_schedules_round_trip_through_keras_serialization():
    lr = build_lr(
        learning_rate={"type": "cosine", "cosine": {"initial_learning_rate": 0.1, "decay_steps": 30, "offset": 4}},
        warmup={"type": "linear", "linear": {"warmup_steps": 6}},
    )
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(lr))
    assert isinstance(restored, lr_schedule.LinearWarmup)
    assert isinstance(restored.after_warmup_lr_sched, lr_schedule.OffsetSchedule)
    assert lr_at(restored, [0, 3, 10, 40]) == pytest.approx(lr_at(lr, [0, 3, 10, 40]))


# Optimizers.


def build_optimizer(optimizer, learning_rate=None):
    return optimization.create_optimizer(make_config(optimizer=optimizer, learning_rate=learning_rate))


def test_sgd_maps_hyperparameters():
    opt = build_optimizer({"type": "sgd", "sgd": {"momentum": 0.8, "nesterov": True, "clipnorm": 2.0}})
    assert type(opt) is keras.optimizers.SGD
    assert opt.momentum == pytest.approx(0.8)
    assert opt.nesterov is True
    assert opt.clipnorm == pytest.approx(2.0)
    assert float(opt.learning_rate) == pytest.approx(0.1)


def test_sgd_momentum_steps_match_hand_computation():
    opt = build_optimizer(SGD_01)
    var = keras.Variable([1.0, -2.0])
    grad = tf.constant([0.5, 1.0])
    opt.apply_gradients([(grad, var)])
    # velocity = -lr * g; var += velocity.
    velocity = -0.1 * np.array([0.5, 1.0])
    expected = np.array([1.0, -2.0]) + velocity
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-6)
    opt.apply_gradients([(grad, var)])
    velocity = 0.9 * velocity - 0.1 * np.array([0.5, 1.0])
    np.testing.assert_allclose(var.numpy(), expected + velocity, rtol=1e-6)


def test_sgd_follows_the_schedule_with_the_optimizer_step():
    opt = build_optimizer(
        {"type": "sgd", "sgd": {}},
        learning_rate={"type": "stepwise", "stepwise": {"boundaries": [0], "values": [1.0, 0.1]}},
    )
    var = keras.Variable([0.0])

    @tf.function
    def step():
        opt.apply_gradients([(tf.constant([1.0]), var)])

    step()  # iterations == 0: rate 1.0.
    step()  # iterations == 1: rate 0.1.
    np.testing.assert_allclose(var.numpy(), [-1.1], rtol=1e-6)
    assert int(opt.iterations) == 2


def test_sgd_legacy_decay_is_refused():
    with pytest.raises(ValueError, match=r"optimizer\.sgd\.decay.*schedule"):
        build_optimizer({"type": "sgd", "sgd": {"decay": 0.01}})


@pytest.mark.parametrize("kind", ["adam", "adam_experimental"])
def test_adam_maps_hyperparameters(kind):
    opt = build_optimizer(
        {"type": kind, kind: {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "amsgrad": True, "clipvalue": 0.5}}
    )
    assert type(opt) is fused_adam.FusedAdam
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == pytest.approx((0.8, 0.99, 1e-6))
    assert opt.amsgrad is True
    assert opt.clipvalue == pytest.approx(0.5)


def test_sgd_experimental_builds_sgd():
    opt = build_optimizer({"type": "sgd_experimental", "sgd_experimental": {"momentum": 0.5, "jit_compile": True}})
    assert type(opt) is keras.optimizers.SGD
    assert opt.momentum == pytest.approx(0.5)


def test_adamw_maps_model_garden_adam_weight_decay():
    opt = build_optimizer(
        {
            "type": "adamw",
            "adamw": {"weight_decay_rate": 0.01, "beta_1": 0.85, "exclude_from_weight_decay": ["bias"]},
        }
    )
    assert type(opt) is fused_adam.FusedAdamW
    assert opt.weight_decay == pytest.approx(0.01)
    assert opt.beta_1 == pytest.approx(0.85)
    # gradient_clip_norm defaults to 1.0 in Model Garden's config.
    assert opt.global_clipnorm == pytest.approx(1.0)
    assert opt.clipnorm is None


def test_adamw_decays_all_but_excluded_variables():
    opt = build_optimizer(
        {"type": "adamw", "adamw": {"weight_decay_rate": 0.5, "exclude_from_weight_decay": ["bias"]}}
    )
    kernel = keras.Variable([2.0, 4.0], name="kernel")
    bias = keras.Variable([2.0, 4.0], name="bias")
    zero = tf.zeros([2])
    # With zero gradients Adam does not move; only the decoupled decay
    # var -= lr * weight_decay * var acts.
    opt.apply_gradients([(zero, kernel), (zero, bias)])
    np.testing.assert_allclose(kernel.numpy(), [2.0 * 0.95, 4.0 * 0.95], rtol=1e-6)
    np.testing.assert_allclose(bias.numpy(), [2.0, 4.0])


def test_adamw_clip_norms():
    opt = build_optimizer({"type": "adamw", "adamw": {"gradient_clip_norm": 0.0}})
    assert opt.global_clipnorm is None
    # Both set: Model Garden clips twice, i.e. to the smaller norm.
    opt = build_optimizer({"type": "adamw", "adamw": {"gradient_clip_norm": 3.0, "global_clipnorm": 2.0}})
    assert opt.global_clipnorm == pytest.approx(2.0)
    opt = build_optimizer({"type": "adamw", "adamw": {"gradient_clip_norm": 0.0, "clipnorm": 2.0}})
    assert opt.clipnorm == pytest.approx(2.0) and opt.global_clipnorm is None
    with pytest.raises(ValueError, match=r"optimizer\.adamw\.gradient_clip_norm"):
        build_optimizer({"type": "adamw", "adamw": {"clipnorm": 2.0}})


def test_adamw_include_with_exclude_is_refused():
    with pytest.raises(ValueError, match=r"optimizer\.adamw\.include_in_weight_decay"):
        build_optimizer(
            {
                "type": "adamw",
                "adamw": {
                    "weight_decay_rate": 0.01,
                    "include_in_weight_decay": ["kernel"],
                    "exclude_from_weight_decay": ["bias"],
                },
            }
        )


def test_adamw_experimental_maps_hyperparameters():
    opt = build_optimizer({"type": "adamw_experimental", "adamw_experimental": {"weight_decay": 0.05}})
    assert type(opt) is fused_adam.FusedAdamW
    assert opt.weight_decay == pytest.approx(0.05)
    assert opt.global_clipnorm == pytest.approx(1.0)


def test_rmsprop_adagrad_lamb_adafactor_map_hyperparameters():
    opt = build_optimizer({"type": "rmsprop", "rmsprop": {"rho": 0.8, "momentum": 0.5, "centered": True}})
    assert type(opt) is keras.optimizers.RMSprop
    assert (opt.rho, opt.momentum, opt.centered) == (pytest.approx(0.8), pytest.approx(0.5), True)

    opt = build_optimizer({"type": "adagrad", "adagrad": {"initial_accumulator_value": 0.3, "epsilon": 1e-5}})
    assert type(opt) is keras.optimizers.Adagrad
    assert (opt.initial_accumulator_value, opt.epsilon) == pytest.approx((0.3, 1e-5))

    opt = build_optimizer({"type": "lamb", "lamb": {"beta_2": 0.98, "global_clipnorm": 1.5}})
    assert type(opt) is keras.optimizers.Lamb
    assert (opt.beta_2, opt.epsilon, opt.global_clipnorm) == pytest.approx((0.98, 1e-6, 1.5))

    opt = build_optimizer({"type": "adafactor_keras", "adafactor_keras": {"beta_2_decay": -0.5}})
    assert type(opt) is keras.optimizers.Adafactor
    assert opt.beta_2_decay == pytest.approx(-0.5)


@pytest.mark.parametrize(
    "lamb",
    [
        {"weight_decay_rate": 0.01},
        {"exclude_from_weight_decay": ["bias"]},
        {"exclude_from_layer_adaptation": ["bias"]},
    ],
)
def test_lamb_settings_keras_cannot_reproduce_are_refused(lamb):
    with pytest.raises(ValueError, match=r"optimizer\.lamb\."):
        build_optimizer({"type": "lamb", "lamb": lamb})


def test_two_clip_settings_are_refused():
    with pytest.raises(ValueError, match=r"optimizer\.sgd sets clipnorm, clipvalue"):
        build_optimizer({"type": "sgd", "sgd": {"clipnorm": 1.0, "clipvalue": 1.0}})


def test_factory_accepts_a_dict_and_a_postprocessor():
    factory = optimization.OptimizerFactory({"optimizer": SGD_01, "learning_rate": CONSTANT_01})
    seen = []
    opt = factory.build_optimizer(factory.build_learning_rate(), postprocessor=lambda o: seen.append(o) or o)
    assert seen == [opt]
    with pytest.raises(TypeError):
        factory.build_optimizer(0.1, postprocessor=lambda o: "not an optimizer")


# Mixed precision.


def runtime(**kwargs):
    return config_definitions.RuntimeConfig(kwargs)


def test_float16_runtime_wraps_in_loss_scale_optimizer():
    config = make_config(optimizer={"type": "adam", "adam": {"beta_1": 0.7}})
    opt = optimization.create_optimizer(config, runtime(mixed_precision_dtype="float16"))
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert type(opt.inner_optimizer) is fused_adam.FusedAdam
    assert opt.inner_optimizer.beta_1 == pytest.approx(0.7)
    assert opt.initial_scale == pytest.approx(2.0**15)


def test_numeric_loss_scale_is_the_initial_scale():
    for loss_scale in (128, 128.0, "128"):
        opt = optimization.create_optimizer(
            make_config(), runtime(mixed_precision_dtype="float16", loss_scale=loss_scale)
        )
        assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
        assert opt.initial_scale == pytest.approx(128.0)
    opt = optimization.create_optimizer(make_config(), runtime(mixed_precision_dtype="float16", loss_scale="dynamic"))
    assert opt.initial_scale == pytest.approx(2.0**15)
    with pytest.raises(ValueError, match=r"runtime\.loss_scale"):
        optimization.create_optimizer(make_config(), runtime(mixed_precision_dtype="float16", loss_scale="fixed"))


@pytest.mark.parametrize("dtype", [None, "float32", "bfloat16"])
def test_other_runtimes_give_the_plain_optimizer(dtype):
    opt = optimization.create_optimizer(make_config(), runtime(mixed_precision_dtype=dtype))
    assert type(opt) is keras.optimizers.SGD
    assert type(optimization.create_optimizer(make_config())) is keras.optimizers.SGD


def test_float16_global_policy_wraps(float16_policy):
    opt = optimization.create_optimizer(make_config())
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert type(opt.inner_optimizer) is keras.optimizers.SGD


# Errors.


@pytest.mark.parametrize("kind", ["lars", "adafactor", "slide"])
def test_unsupported_optimizer_type(kind):
    message = (rf"^trainer\.optimizer_config\.optimizer\.type is '{kind}'; allowed \(those built with Keras 3 "
               r"here\): adafactor_keras, adagrad, adam")
    with pytest.raises(ValueError, match=message):
        optimization.OptimizerFactory(make_config(optimizer={"type": kind}))


def test_unknown_optimizer_type():
    with pytest.raises(ValueError, match=r"optimizer\.type is 'nadam'; allowed.*sgd"):
        optimization.OptimizerFactory(make_config(optimizer={"type": "nadam"}))


def test_unset_optimizer_type():
    with pytest.raises(ValueError, match=r"trainer\.optimizer_config\.optimizer\.type is not set; .*sgd"):
        optimization.create_optimizer(make_config(optimizer={"type": None}))


def test_unset_and_unsupported_learning_rate_type():
    with pytest.raises(ValueError, match=r"learning_rate\.type is not set"):
        optimization.OptimizerFactory(make_config(learning_rate={"type": None}))
    with pytest.raises(ValueError, match=r"learning_rate\.type is 'step_cosine_with_offset'; allowed.*cosine"):
        optimization.OptimizerFactory(make_config(learning_rate={"type": "step_cosine_with_offset"}))


def test_unsupported_warmup_type():
    config = make_config()
    config.warmup.type = "cosine"
    with pytest.raises(ValueError, match=r"warmup\.type is 'cosine'; allowed.*linear, polynomial"):
        optimization.OptimizerFactory(config)


def test_ema_is_refused():
    with pytest.raises(ValueError, match=r"trainer\.optimizer_config\.ema"):
        optimization.create_optimizer(make_config(ema={"average_decay": 0.99}))


def test_missing_schedule_fields_are_named():
    with pytest.raises(ValueError, match=r"learning_rate\.cosine\.decay_steps must be set"):
        build_lr(learning_rate={"type": "cosine", "cosine": {"initial_learning_rate": 0.1}})
    with pytest.raises(ValueError, match=r"warmup\.linear\.warmup_steps must be set"):
        build_lr(warmup={"type": "linear"})
    with pytest.raises(ValueError, match=r"learning_rate\.stepwise\.values needs one more"):
        build_lr(learning_rate={"type": "stepwise", "stepwise": {"boundaries": [1, 2], "values": [0.1, 0.2]}})
