"""Tests for successive regularization (multitask.successive_regularization)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_trainer
from multitask import interleaving_trainer
from multitask import multitask
from multitask import successive_regularization
from multitask import task_sampler


def _joint(strength):
    keras.utils.set_random_seed(0)
    mt = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
    model = toy.ToyMultiTaskModel()
    trainer = base_trainer.MultiTaskBaseTrainer(mt, model, keras.optimizers.SGD(0.1),
                                                successive_regularization=strength)
    return trainer, model


def test_pull_towards_the_phase_start_by_hand():
    plain, plain_model = _joint(0.0)
    pulled, model = _joint(2.0)
    start = model.shared.kernel.numpy().copy()
    plain.train(tf.constant(1))
    pulled.train(tf.constant(1))
    stepped = plain_model.shared.kernel.numpy()
    # θ ← θ' - η λ (θ' - θ_0), η = 0.1, λ = 2.
    np.testing.assert_allclose(model.shared.kernel.numpy(), stepped - 0.2 * (stepped - start), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.sub_tasks["bar"].head.kernel.numpy(),
                               plain_model.sub_tasks["bar"].head.kernel.numpy(), rtol=1e-6)


def test_a_new_phase_starts_when_the_active_tasks_change(tmp_path):
    trainer, model = _joint(1.0)
    trainer.train(tf.constant(2))
    anchors = trainer.successive_regularization.anchors
    first_anchor = anchors[0].numpy().copy()
    trainer.train(tf.constant(2))
    np.testing.assert_array_equal(anchors[0].numpy(), first_anchor)  # same phase
    trainer.multi_task.disable_task("bar")
    before = model.shared.kernel.numpy().copy()
    trainer.train(tf.constant(1))
    np.testing.assert_array_equal(anchors[0].numpy(), before)  # re-anchored at the new phase
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    fresh, _ = _joint(1.0)
    fresh.checkpoint.read(path).assert_existing_objects_matched()
    assert fresh.successive_regularization.maybe_start_phase(["foo"]) is False  # resumed, not a new phase
    np.testing.assert_array_equal(fresh.successive_regularization.anchors[0].numpy(), before)


def test_a_task_stopped_again_after_a_restore_starts_the_phase_again(tmp_path):
    """A run resumed from a checkpoint taken before a task stopped, that stops
    it again (a resumed evaluation), starts the phase the uninterrupted run
    started: the phase's tasks are in the checkpoint."""
    trainer, _ = _joint(1.0)
    trainer.train(tf.constant(2))
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    fresh, model = _joint(1.0)
    fresh.checkpoint.read(path).assert_existing_objects_matched()
    fresh.multi_task.disable_task("bar")
    before = model.shared.kernel.numpy().copy()
    fresh.train(tf.constant(1))
    np.testing.assert_array_equal(fresh.successive_regularization.anchors[0].numpy(), before)


def _interleaving(strength):
    keras.utils.set_random_seed(0)
    mt = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
    model = toy.ToyMultiTaskModel()
    trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
        mt, model, keras.optimizers.SGD(0.1), task_sampler.RoundRobinTaskSampler(mt.sampling_weights),
        successive_regularization=strength,
    )
    return trainer, model


def test_interleaving_trainer_pulls_after_the_task_step():
    plain, plain_model = _interleaving(0.0)
    pulled, model = _interleaving(2.0)
    start = model.shared.kernel.numpy().copy()
    plain.train(tf.constant(1))
    pulled.train(tf.constant(1))
    stepped = plain_model.shared.kernel.numpy()
    np.testing.assert_allclose(model.shared.kernel.numpy(), stepped - 0.2 * (stepped - start), rtol=1e-5, atol=1e-7)


def test_strength_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        successive_regularization.SuccessiveRegularization([tf.Variable(1.0)], -1.0)
