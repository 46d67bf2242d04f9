"""Tests for the interleaving trainer."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import configs
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


def _sampled_trainer(strategy, sampling, init=None):
    """A foo/bar trainer whose sampler `get_task_sampler` builds from `sampling` (weights 1 and 3)."""
    with strategy.scope():
        mt = multitask.MultiTask(
            [toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())], task_weights={"foo": 1.0, "bar": 3.0}
        )
        model = toy.ToyMultiTaskModel()
        trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
            mt, model, keras.optimizers.Adam(0.05),
            task_sampler.get_task_sampler(configs.TaskSamplingConfig(**sampling), mt.sampling_weights),
        )
    if init is not None:
        for variable, value in zip(model.trainable_variables, init):
            variable.assign(value)
    return trainer, model


def _counters(trainer):
    return {name: int(trainer.task_step_counter(name).numpy()) for name in ("foo", "bar")}


@pytest.mark.parametrize("sampling", [
    {"type": "uniform"},
    {"type": "temperature", "temperature": {"temperature": 2.0, "dataset_sizes": (64, 16)}},
    {"type": "round_robin"},
], ids=lambda sampling: sampling["type"])
def test_a_restored_trainer_draws_and_trains_as_an_uninterrupted_one(tmp_path, sampling):
    """Restored after 7 steps (mid-epoch: 8 batches an epoch per task), a new
    trainer draws the same tasks and ends with the same variables, bit for
    bit, as one that trained on. tests/test_fault_tolerance.py SIGKILLs the
    launcher with the other samplers (proportional, annealing, epoch_shuffled)."""
    whole, model = _sampled_trainer(tf.distribute.get_strategy(), sampling)
    init = [v.numpy() for v in model.trainable_variables]
    whole.train(tf.constant(7))
    path = whole.checkpoint.save(str(tmp_path / "ckpt"))
    whole.train(tf.constant(9))
    resumed, resumed_model = _sampled_trainer(tf.distribute.get_strategy(), sampling, init=init)
    resumed.checkpoint.read(path).assert_existing_objects_matched()
    resumed.train(tf.constant(9))
    assert _counters(resumed) == _counters(whole)
    assert min(_counters(whole).values()) > 0
    assert int(resumed.global_step.numpy()) == 16
    for got, want in zip(resumed_model.variables, model.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=want.path)
    for got, want in zip(resumed.optimizer.variables, whole.optimizer.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=want.path)


def test_one_and_two_replicas_draw_the_same_tasks_and_end_alike(two_cpu_strategy):
    """The same global batch (8) on one replica and split 4 + 4 over two, same
    seed and initial weights: each step draws the same task (the draw is a
    function of the sampling seed and the global step, taken outside the
    replicas), the step counters agree, and the variables end alike.

    Tolerance: the two runs differ only in float32 rounding (two partial means
    of 4 examples, scaled by 1/2 and summed by the all-reduce, against one
    mean of 8), compounded over 12 Adam steps: 3e-8 at most when measured
    (2e-7 relative). rtol 1e-5 (atol 1e-6 near 0) sits well above that and
    far below one step's change (about the learning rate, 0.05), which the
    test checks the variables made.
    """
    sampling = {"type": "proportional"}
    one, one_model = _sampled_trainer(tf.distribute.get_strategy(), sampling)
    init = [v.numpy() for v in one_model.trainable_variables]
    two, two_model = _sampled_trainer(two_cpu_strategy, sampling, init=init)
    assert two.strategy.num_replicas_in_sync == 2
    draws = {"one": [], "two": []}
    for _ in range(12):
        for key, trainer in (("one", one), ("two", two)):
            before = _counters(trainer)
            trainer.train(tf.constant(1))
            draws[key].append(next(n for n, count in _counters(trainer).items() if count > before[n]))
    assert draws["one"] == draws["two"]
    assert set(draws["one"]) == {"foo", "bar"}
    assert _counters(one) == _counters(two)
    assert int(one.global_step.numpy()) == int(two.global_step.numpy()) == 12
    for start, a, b in zip(init, one_model.trainable_variables, two_model.trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert max(np.abs(a.numpy() - start).max() for start, a in zip(init, one_model.trainable_variables)) > 1e-2
