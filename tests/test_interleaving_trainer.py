"""Tests for the interleaving trainer."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import interleaving_trainer
from multitask import multitask
from multitask import task_sampler


def _trainer(strategy, weights, sampler_cls=task_sampler.ProportionalTaskSampler, lr=0.05):
    with strategy.scope():
        mt = multitask.MultiTask(
            [toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())], task_weights=weights
        )
        model = toy.ToyMultiTaskModel()
        trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
            mt, model, keras.optimizers.SGD(lr), sampler_cls(mt.task_weights)
        )
    return trainer, model


@pytest.mark.parametrize("mirrored", [False, True])
def test_interleaving_trains_and_counts(mirrored, two_cpu_strategy):
    strategy = two_cpu_strategy if mirrored else tf.distribute.get_strategy()
    trainer, model = _trainer(strategy, {"foo": 1.0, "bar": 1.0}, task_sampler.UniformTaskSampler)
    shared_before = model.shared.kernel.numpy().copy()
    logs = trainer.train(tf.constant(20))
    assert set(logs) == {"foo", "bar", "learning_rate"}
    assert set(logs["foo"]) == {"training_loss", "mae", "task_steps"}
    steps = {n: int(trainer.task_step_counter(n).numpy()) for n in ("foo", "bar")}
    assert steps["foo"] + steps["bar"] == int(trainer.global_step.numpy()) == 20
    assert min(steps.values()) > 0
    assert int(trainer.optimizer.iterations.numpy()) == 20
    assert not np.allclose(shared_before, model.shared.kernel.numpy())


def test_counters_follow_the_distribution_over_1000_steps():
    trainer, _ = _trainer(tf.distribute.get_strategy(), {"foo": 1.0, "bar": 3.0}, lr=0.001)
    trainer.train(tf.constant(1000))
    foo = int(trainer.task_step_counter("foo").numpy())
    assert foo + int(trainer.task_step_counter("bar").numpy()) == 1000
    assert abs(foo / 1000 - 0.25) < 0.04


def test_only_the_sampled_task_head_changes():
    trainer, model = _trainer(tf.distribute.get_strategy(), {"foo": 1.0, "bar": 0.0})
    bar_head = model.sub_tasks["bar"].head.kernel.numpy().copy()
    foo_head = model.sub_tasks["foo"].head.kernel.numpy().copy()
    trainer.train(tf.constant(5))
    assert int(trainer.task_step_counter("bar").numpy()) == 0
    np.testing.assert_array_equal(bar_head, model.sub_tasks["bar"].head.kernel.numpy())
    assert not np.allclose(foo_head, model.sub_tasks["foo"].head.kernel.numpy())


def test_sampling_sequence_is_a_function_of_the_global_step():
    first, _ = _trainer(tf.distribute.get_strategy(), {"foo": 1.0, "bar": 1.0})
    second, _ = _trainer(tf.distribute.get_strategy(), {"foo": 1.0, "bar": 1.0})
    first.train(tf.constant(30))
    second.train(tf.constant(10))
    second.train(tf.constant(20))
    assert int(first.task_step_counter("foo").numpy()) == int(second.task_step_counter("foo").numpy())


def test_sampler_tasks_must_match():
    with pytest.raises(ValueError, match="differ from the MultiTask's tasks"):
        mt = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
        interleaving_trainer.MultiTaskInterleavingTrainer(
            mt, toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.1),
            task_sampler.UniformTaskSampler({"bar": 1.0, "foo": 1.0}),
        )
