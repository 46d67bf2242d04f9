"""Tests for the joint trainer (MultiTaskBaseTrainer)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_trainer
from multitask import multitask


def _trainer(strategy, optimizer=None, **kwargs):
    with strategy.scope():
        mt = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
        model = toy.ToyMultiTaskModel()
        trainer = base_trainer.MultiTaskBaseTrainer(
            mt, model, optimizer or keras.optimizers.SGD(0.05), **kwargs
        )
    return trainer, model


@pytest.mark.parametrize("mirrored", [False, True])
def test_joint_training_updates_shared_layer_and_reports(mirrored, two_cpu_strategy):
    strategy = two_cpu_strategy if mirrored else tf.distribute.get_strategy()
    trainer, model = _trainer(strategy)
    shared_before = model.shared.kernel.numpy().copy()
    heads_before = {n: m.head.kernel.numpy().copy() for n, m in model.sub_tasks.items()}
    logs = trainer.train(tf.constant(3))
    assert set(logs) == {"foo", "bar", "total_loss", "learning_rate"}
    for name in ("foo", "bar"):
        assert set(logs[name]) == {"training_loss", "mae", "task_steps"}
        assert int(logs[name]["task_steps"]) == 3
        assert not np.allclose(heads_before[name], model.sub_tasks[name].head.kernel.numpy())
    assert not np.allclose(shared_before, model.shared.kernel.numpy())
    assert int(trainer.global_step.numpy()) == 3
    assert int(trainer.optimizer.iterations.numpy()) == 3
    np.testing.assert_allclose(logs["learning_rate"], 0.05)
    np.testing.assert_allclose(
        logs["total_loss"], logs["foo"]["training_loss"] + logs["bar"]["training_loss"], rtol=1e-5
    )


def test_training_loss_decreases():
    trainer, _ = _trainer(tf.distribute.get_strategy(), keras.optimizers.Adam(0.05))
    first = trainer.train(tf.constant(10))["total_loss"]
    for _ in range(4):
        last = trainer.train(tf.constant(20))["total_loss"]
    assert float(last) < 0.5 * float(first)


def test_checkpoint_holds_model_optimizer_and_counters(tmp_path):
    trainer, model = _trainer(tf.distribute.get_strategy(), keras.optimizers.Adam(0.01))
    trainer.train(tf.constant(2))
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path)]
    assert "global_step/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert "task_step_counters/foo/.ATTRIBUTES/VARIABLE_VALUE" in names
    # Adam keeps two slots (m, v) for each of the 6 trainable variables.
    assert sum(name.startswith("optimizer/_variables/") for name in names) == 12
    fresh, fresh_model = _trainer(tf.distribute.get_strategy(), keras.optimizers.Adam(0.01))
    fresh.checkpoint.read(path).assert_existing_objects_matched()
    assert int(fresh.global_step.numpy()) == 2
    assert int(fresh.task_step_counter("bar").numpy()) == 2
    assert int(fresh.optimizer.iterations.numpy()) == 2
    np.testing.assert_array_equal(fresh_model.shared.kernel.numpy(), model.shared.kernel.numpy())
    for restored, saved in zip(fresh.optimizer.variables, trainer.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())


def test_shared_input_dataset_feeds_every_task(two_cpu_strategy):
    """One dataset of (features, {task: labels}) trains both tasks."""
    x, y = toy.toy_arrays(5)
    shared = tf.data.Dataset.from_tensor_slices((x, {"foo": y, "bar": -y})).repeat().batch(8)
    trainer, model = _trainer(two_cpu_strategy, train_datasets=shared)
    logs = trainer.train(tf.constant(2))
    assert int(logs["foo"]["task_steps"]) == 2
    # Both tasks saw the same features, so their losses differ only by labels.
    assert float(logs["foo"]["training_loss"]) != float(logs["bar"]["training_loss"])


def test_missing_sub_model_is_a_clear_error():
    with pytest.raises(KeyError, match="'baz' has no sub-model"):
        mt = multitask.MultiTask({"baz": toy.ToyTask(toy.FooConfig())})
        base_trainer.MultiTaskBaseTrainer(mt, toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.1))


def test_missing_train_dataset_is_a_clear_error():
    with pytest.raises(KeyError, match=r"no dataset for tasks \['bar'\]"):
        _trainer(tf.distribute.get_strategy(), train_datasets={"foo": tf.data.Dataset.range(1)})


def test_float16_policy_wraps_optimizer_and_trains():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        trainer, model = _trainer(tf.distribute.get_strategy())
        assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        logs = trainer.train(tf.constant(2))
        assert np.isfinite(float(logs["total_loss"]))
        assert model.shared.kernel.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("item", ["weighting", "early_stopping", "evaluation", "task_optimizers"])
def test_model_checkpoint_items_may_not_take_a_reserved_name(item):
    """Every item a trainer or the launcher adds to the checkpoint is reserved."""

    class Clashing(toy.ToyMultiTaskModel):
        @property
        def checkpoint_items(self):
            return {item: self.shared}

    with pytest.raises(ValueError, match=f"reserved names \\['{item}'\\]"):
        base_trainer.MultiTaskBaseTrainer(
            multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())]),
            Clashing(), keras.optimizers.SGD(0.1))
