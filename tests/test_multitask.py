"""Tests for MultiTask: construction, from_config, and the joint step numerics."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions as cfg

import toy
from multitask import base_trainer
from multitask import configs
from multitask import multitask


def _tasks():
    return [toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())]


def test_list_and_dict_construction():
    by_list = multitask.MultiTask(_tasks(), task_weights={"bar": 2.0}, task_eval_steps={"foo": 3})
    assert list(by_list.tasks) == ["foo", "bar"]
    assert by_list.task_weights == {"foo": 1.0, "bar": 2.0}
    assert by_list.task_weight("bar") == 2.0
    assert by_list.task_eval_steps == {"foo": 3}
    by_dict = multitask.MultiTask({"a": _tasks()[0]})
    assert list(by_dict.tasks) == ["a"]


def test_duplicate_names_rejected():
    with pytest.raises(ValueError, match="Duplicated task name 'foo'"):
        multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.FooConfig())])


def test_weight_for_unknown_task_rejected():
    with pytest.raises(ValueError, match=r"task_weights names unknown tasks \['baz'\]"):
        multitask.MultiTask(_tasks(), task_weights={"baz": 1.0})


def test_from_config_builds_registered_tasks():
    config = configs.MultiTaskConfig(
        task_routines=(
            configs.TaskRoutine(task_config=toy.FooConfig(), task_weight=0.25, eval_steps=2),
            configs.TaskRoutine(task_name="second", task_config=toy.BarConfig()),
        )
    )
    mt = multitask.MultiTask.from_config(config)
    assert list(mt.tasks) == ["foo", "second"]
    assert isinstance(mt.tasks["second"], toy.ToyTask)
    assert mt.tasks["second"].name == "second"
    assert mt.task_weights == {"foo": 0.25, "second": 1.0}
    assert mt.task_eval_steps == {"foo": 2, "second": None}


def test_from_config_duplicate_names_rejected():
    config = configs.MultiTaskConfig(
        task_routines=(
            configs.TaskRoutine(task_config=toy.FooConfig()),
            configs.TaskRoutine(task_config=toy.FooConfig()),
        )
    )
    with pytest.raises(ValueError, match="duplicated task name 'foo'"):
        multitask.MultiTask.from_config(config)


@dataclasses.dataclass
class UnregisteredConfig(cfg.TaskConfig):
    name: str = "orphan"


def test_from_config_unregistered_task_class():
    config = configs.MultiTaskConfig(task_routines=(configs.TaskRoutine(task_config=UnregisteredConfig()),))
    with pytest.raises(ValueError, match="'orphan': no Task is registered for config class UnregisteredConfig"):
        multitask.MultiTask.from_config(config)


def _numpy_grads(x, y, w1, b1, w2, b2):
    """Gradients of mean((x w1 + b1) w2 + b2 - y)^2 for the toy linear model."""
    h = x @ w1 + b1
    d_out = 2.0 * (h @ w2 + b2 - y) / len(x)
    d_h = d_out @ w2.T
    return {"w1": x.T @ d_h, "b1": d_h.sum(0), "w2": h.T @ d_out, "b2": d_out.sum(0)}


def _one_joint_step(strategy, init, lr=0.1, weights=None):
    weights = weights or {"foo": 1.0, "bar": 0.5}
    with strategy.scope():
        mt = multitask.MultiTask(_tasks(), task_weights=weights)
        model = toy.ToyMultiTaskModel()
        trainer = base_trainer.MultiTaskBaseTrainer(mt, model, keras.optimizers.SGD(lr))
    if init is not None:
        for variable, value in zip(model.trainable_variables, init):
            variable.assign(value)
    before = [v.numpy().copy() for v in model.trainable_variables]
    logs = trainer.train(tf.constant(1))
    return before, [v.numpy() for v in model.trainable_variables], logs


def test_joint_step_matches_hand_computed_sgd_update():
    lr, weights = 0.1, {"foo": 1.0, "bar": 0.5}
    before, after, logs = _one_joint_step(tf.distribute.get_strategy(), None, lr, weights)
    w1, b1, w2_foo, b2_foo, w2_bar, b2_bar = before
    x_foo, y_foo = toy.toy_arrays(1)
    x_bar, y_bar = toy.toy_arrays(3)
    g_foo = _numpy_grads(x_foo[:8], y_foo[:8], w1, b1, w2_foo, b2_foo)
    g_bar = _numpy_grads(x_bar[:8], y_bar[:8], w1, b1, w2_bar, b2_bar)
    expected = [
        w1 - lr * (weights["foo"] * g_foo["w1"] + weights["bar"] * g_bar["w1"]),
        b1 - lr * (weights["foo"] * g_foo["b1"] + weights["bar"] * g_bar["b1"]),
        w2_foo - lr * weights["foo"] * g_foo["w2"],
        b2_foo - lr * weights["foo"] * g_foo["b2"],
        w2_bar - lr * weights["bar"] * g_bar["w2"],
        b2_bar - lr * weights["bar"] * g_bar["b2"],
    ]
    for want, got in zip(expected, after):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    loss_foo = np.mean(((x_foo[:8] @ w1 + b1) @ w2_foo + b2_foo - y_foo[:8]) ** 2)
    loss_bar = np.mean(((x_bar[:8] @ w1 + b1) @ w2_bar + b2_bar - y_bar[:8]) ** 2)
    np.testing.assert_allclose(logs["foo"]["training_loss"], loss_foo, rtol=1e-5)
    np.testing.assert_allclose(logs["total_loss"], loss_foo + 0.5 * loss_bar, rtol=1e-5)


def test_joint_step_same_update_on_one_and_two_replicas(two_cpu_strategy):
    init, one, _ = _one_joint_step(tf.distribute.get_strategy(), None)
    _, two, _ = _one_joint_step(two_cpu_strategy, init)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(init[0], one[0])


def test_joint_step_includes_layer_losses():
    """A regularized shared layer adds its penalty to every task's loss."""

    class RegularizedModel(toy.ToyMultiTaskModel):
        def __init__(self):
            super().__init__()
            self.shared.kernel_regularizer = keras.regularizers.L2(0.5)

    with tf.distribute.get_strategy().scope():
        mt = multitask.MultiTask(_tasks())
        model = RegularizedModel()
        model.build()
        trainer = base_trainer.MultiTaskBaseTrainer(mt, model, keras.optimizers.SGD(0.0))
    w1 = model.shared.kernel.numpy()
    penalty = 0.5 * np.sum(w1**2)
    logs = trainer.train(tf.constant(1))
    x, y = toy.toy_arrays(1)
    foo = model.sub_tasks["foo"]
    data_loss = np.mean((foo(x[:8]).numpy() - y[:8]) ** 2)
    np.testing.assert_allclose(logs["foo"]["training_loss"], data_loss + penalty, rtol=1e-5)
