"""Tests for the Keras 3 Task contract: steps, layer losses, warm start, optimizer."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import task_factory
from official.modeling import optimization

import toy
from multitask.core import base_task


class ConstantLoss(keras.layers.Layer):
    """Adds a constant 0.25 to the losses of the model that calls it."""

    def call(self, x):
        self.add_loss(keras.ops.convert_to_tensor(0.25))
        return x


class RegularizedToyTask(toy.ToyTask):
    """A model whose head has an L2 penalty and which adds a constant loss."""

    def build_model(self):
        inputs = keras.Input((2,))
        hidden = ConstantLoss()(keras.layers.Dense(3)(inputs))
        outputs = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.1))(hidden)
        return keras.Model(inputs, outputs)


def test_task_factory_builds_registered_task():
    task = task_factory.get_task(toy.FooConfig(), name="renamed")
    assert isinstance(task, toy.ToyTask)
    assert task.name == "renamed"
    assert task_factory.get_task(toy.BarConfig()).name == "bar"


def test_total_loss_adds_layer_losses():
    task = RegularizedToyTask(toy.FooConfig())
    model = task.build_model()
    x, y = toy.toy_arrays(1, n=8)
    outputs = model(x)
    head_kernel = model.layers[-1].kernel.numpy()
    expected = np.mean((outputs.numpy() - y) ** 2) + 0.1 * np.sum(head_kernel**2) + 0.25
    np.testing.assert_allclose(task.total_loss(y, outputs, model), expected, rtol=1e-5)


def test_train_step_alone_matches_hand_computed_update():
    task = toy.ToyTask(toy.FooConfig())
    model = task.build_model()
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    x, y = toy.toy_arrays(1, n=8)
    w1, b1, w2, b2 = [v.numpy().copy() for v in model.trainable_variables]
    metrics = task.build_metrics()
    logs = tf.function(task.train_step)((x, y), model, optimizer, metrics)
    h = x @ w1 + b1
    d_out = 2.0 * (h @ w2 + b2 - y) / len(x)
    np.testing.assert_allclose(model.head.kernel.numpy(), w2 - 0.1 * h.T @ d_out, rtol=1e-5)
    np.testing.assert_allclose(model.shared.kernel.numpy(), w1 - 0.1 * x.T @ (d_out @ w2.T), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], np.mean((h @ w2 + b2 - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(metrics[0].result(), np.mean(np.abs(h @ w2 + b2 - y)), rtol=1e-5)


def test_validation_step_reports_loss_with_layer_losses():
    task = RegularizedToyTask(toy.FooConfig())
    model = task.build_model()
    x, y = toy.toy_arrays(2, n=8)
    logs = task.validation_step((x, y), model)
    np.testing.assert_allclose(logs["loss"], task.total_loss(y, model(x), model), rtol=1e-6)


def test_initialize_restores_init_checkpoint(tmp_path):
    source = toy.ToyTask(toy.FooConfig()).build_model()
    tf.train.Checkpoint(model=source).save(str(tmp_path / "ckpt"))
    task = toy.ToyTask(toy.FooConfig(init_checkpoint=str(tmp_path)))
    target = task.build_model()
    task.initialize(target)
    for a, b in zip(source.variables, target.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_initialize_without_init_checkpoint_changes_nothing():
    task = toy.ToyTask(toy.FooConfig())
    model = task.build_model()
    before = [v.numpy().copy() for v in model.variables]
    task.initialize(model)
    for a, b in zip(before, model.variables):
        np.testing.assert_array_equal(a, b.numpy())


def _optimization(kind="adam"):
    return optimization.OptimizationConfig(
        {"optimizer": {"type": kind}, "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.01}}}
    )


def test_create_optimizer_builds_keras3_optimizers():
    optimizer = base_task.Task.create_optimizer(_optimization("adam"))
    assert isinstance(optimizer, keras.optimizers.Adam)
    wrapped = base_task.Task.create_optimizer(
        _optimization("sgd"), cfg.RuntimeConfig(mixed_precision_dtype="float16")
    )
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
    assert isinstance(wrapped.inner_optimizer, keras.optimizers.SGD)


def test_train_step_under_float16_uses_loss_scaling():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        task = toy.ToyTask(toy.FooConfig())
        model = task.build_model()
        optimizer = base_task.Task.create_optimizer(_optimization("sgd"), cfg.RuntimeConfig())
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        optimizer.build(model.trainable_variables)
        before = model.head.kernel.numpy().copy()
        x, y = toy.toy_arrays(1, n=8)
        step = tf.function(task.train_step)
        for _ in range(20):
            logs = step((x, y), model, optimizer)
        assert np.isfinite(float(logs["loss"]))
        assert model.head.kernel.dtype == "float32"
        # Every step went through the LossScaleOptimizer: a step whose scaled
        # float16 gradients overflow is skipped and halves the scale (no growth
        # before 2000 good steps), the others are applied.
        skipped = np.log2(2.0**15 / float(optimizer.dynamic_scale.numpy()))
        assert skipped == int(skipped)
        assert int(optimizer.iterations.numpy()) + int(skipped) == 20
        assert int(optimizer.iterations.numpy()) > 0
        assert not np.allclose(before, model.head.kernel.numpy())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_split_inputs():
    assert base_task.split_inputs((1, 2)) == (1, 2)
    features = {"x": 1, "label": 2}
    assert base_task.split_inputs(features) == (features, features)


def test_build_model_is_optional():
    class DataOnly(base_task.Task):
        def build_inputs(self, params, input_context=None):
            return tf.data.Dataset.range(1)

    with pytest.raises(NotImplementedError, match="DataOnly does not build a model"):
        DataOnly(toy.FooConfig()).build_model()
