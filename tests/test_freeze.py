"""Tests for freezing and unfreezing model parts during training."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from official.core import exp_factory

import multitask.experiments  # noqa: F401  (registers the experiments)
import toy
from multitask import base_model
from multitask import base_trainer
from multitask import interleaving_trainer
from multitask import model_factory
from multitask import multitask
from multitask import task_sampler
from multitask import weighting


def _model():
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="hidden")], name="encoder")
    heads = {}
    for name in ("foo", "bar"):
        heads[name] = keras.layers.Dense(1, name=f"{name}_head")
        heads[name].build((None, 3))
    return base_model.EncoderHeadsModel(encoder, heads)


def _shared_dataset():
    x, y = toy.toy_arrays(5)
    options = tf.data.Options()
    # Without the autotuning thread a finished test's iterator is freed at once (see conftest).
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices((x, {"foo": y, "bar": -y})).repeat().batch(8).with_options(options)


def _trainer(strategy, kind="joint", model_fn=_model, freeze=(), **kwargs):
    kwargs.setdefault("train_datasets", _shared_dataset())
    with strategy.scope():
        mt = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
        model = model_fn()
        for part in freeze:
            model.freeze(part)
        optimizer = keras.optimizers.Adam(0.05)
        if kind == "joint":
            trainer = base_trainer.MultiTaskBaseTrainer(mt, model, optimizer, **kwargs)
        else:
            sampler = task_sampler.UniformTaskSampler({"foo": 1.0, "bar": 1.0})
            trainer = interleaving_trainer.MultiTaskInterleavingTrainer(mt, model, optimizer, sampler, **kwargs)
    return trainer, model


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _unchanged(before, variables):
    return all(np.array_equal(a, v.numpy()) for a, v in zip(before, variables))


def _all_changed(before, variables):
    return all(not np.allclose(a, v.numpy()) for a, v in zip(before, variables))


@pytest.mark.parametrize("kind", ["joint", "interleaving"])
def test_frozen_encoder_does_not_change_and_unfreezing_resumes(kind, two_cpu_strategy):
    trainer, model = _trainer(two_cpu_strategy, kind)
    encoder, heads = model.encoder.variables, model.heads["foo"].variables + model.heads["bar"].variables
    trainer.train(tf.constant(3))
    # Adam moves a variable through its momentum even with a zero gradient:
    # the frozen encoder must not be handed to the optimizer at all.
    model.freeze("encoder")
    assert not model.encoder.trainable and len(model.trainable_variables) == 4
    optimizer_state = _values(trainer.optimizer.variables)
    encoder_before, heads_before = _values(encoder), _values(heads)
    trainer.train(tf.constant(8))
    assert _unchanged(encoder_before, encoder)
    assert _all_changed(heads_before, heads)
    assert int(trainer.optimizer.iterations.numpy()) == 11
    model.unfreeze("encoder")
    trainer.train(tf.constant(2))
    assert _all_changed(encoder_before, encoder)
    assert int(trainer.optimizer.iterations.numpy()) == 13


def test_optimizer_state_is_kept_across_freeze_and_unfreeze():
    trainer, model = _trainer(tf.distribute.get_strategy())
    optimizer_variables = list(trainer.optimizer.variables)
    trainer.train(tf.constant(2))
    kernel = model.encoder.layers[0].kernel
    # Adam's first moment of the encoder kernel (the optimizer's own slot).
    momentum = trainer.optimizer._momentums[trainer.optimizer._get_variable_index(kernel)]  # pylint: disable=protected-access
    after_two = momentum.numpy().copy()
    assert np.any(after_two != 0)
    model.freeze("encoder")
    trainer.train(tf.constant(3))
    np.testing.assert_array_equal(momentum.numpy(), after_two)
    model.unfreeze("encoder")
    trainer.train(tf.constant(1))
    assert not np.allclose(momentum.numpy(), after_two)
    assert [id(v) for v in trainer.optimizer.variables] == [id(v) for v in optimizer_variables]
    assert int(trainer.optimizer.iterations.numpy()) == 6


@pytest.mark.parametrize("kind", ["joint", "interleaving"])
def test_frozen_head_does_not_change(kind):
    trainer, model = _trainer(tf.distribute.get_strategy(), kind)
    model.freeze("foo")
    foo_before = _values(model.heads["foo"].variables)
    others = model.heads["bar"].variables + model.encoder.variables
    others_before = _values(others)
    trainer.train(tf.constant(10))
    assert _unchanged(foo_before, model.heads["foo"].variables)
    assert _all_changed(others_before, others)


def test_loop_is_retraced_only_when_the_trainable_set_changes():
    trainer, model = _trainer(tf.distribute.get_strategy())
    trainer.train(tf.constant(1))
    loop = trainer._train_loop_fn  # pylint: disable=protected-access
    trainer.train(tf.constant(1))
    assert trainer._train_loop_fn is loop  # pylint: disable=protected-access
    model.freeze("bar")
    trainer.train(tf.constant(1))
    assert trainer._train_loop_fn is not loop  # pylint: disable=protected-access


def test_part_frozen_before_the_trainer_can_be_unfrozen():
    trainer, model = _trainer(tf.distribute.get_strategy(), freeze=("encoder",))
    before = _values(model.encoder.variables)
    trainer.train(tf.constant(2))
    assert _unchanged(before, model.encoder.variables)
    model.unfreeze("encoder")
    trainer.train(tf.constant(2))
    assert _all_changed(before, model.encoder.variables)


def test_any_layer_of_a_generic_model_can_be_frozen():
    trainer, model = _trainer(tf.distribute.get_strategy(), model_fn=toy.ToyMultiTaskModel)
    model.freeze(model.shared)
    before = _values(model.shared.variables)
    trainer.train(tf.constant(3))
    assert _unchanged(before, model.shared.variables)
    model.unfreeze(model.shared)
    trainer.train(tf.constant(1))
    assert _all_changed(before, model.shared.variables)


def test_checkpoint_does_not_depend_on_what_is_frozen(tmp_path):
    trainer, model = _trainer(tf.distribute.get_strategy(), freeze=("encoder",))
    trainer.train(tf.constant(2))
    path = trainer.checkpoint.save(str(tmp_path / "frozen"))
    plain, _ = _trainer(tf.distribute.get_strategy())
    plain_path = plain.checkpoint.save(str(tmp_path / "plain"))
    assert tf.train.list_variables(path) == [
        (name, shape) for name, shape in tf.train.list_variables(plain_path)
    ]
    fresh, fresh_model = _trainer(tf.distribute.get_strategy())
    fresh.checkpoint.read(path).assert_existing_objects_matched()
    assert int(fresh.optimizer.iterations.numpy()) == 2
    for restored, saved in zip(fresh_model.variables, model.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    for restored, saved in zip(fresh.optimizer.variables, trainer.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())


def test_unknown_part_and_foreign_layer_are_clear_errors():
    model = _model()
    with pytest.raises(KeyError, match="no part 'baz'; parts: encoder, foo, bar"):
        model.freeze("baz")
    stranger = keras.layers.Dense(1)
    stranger.build((None, 3))
    with pytest.raises(ValueError, match="not a built part"):
        model.freeze(stranger)


def test_gradient_weighting_with_all_shared_parameters_frozen_is_a_clear_error():
    with tf.distribute.get_strategy().scope():
        balancer = weighting.get_weighting("pcgrad", 2)
    trainer, model = _trainer(tf.distribute.get_strategy(), weighting=balancer)
    model.freeze("encoder")
    with pytest.raises(ValueError, match="'pcgrad' balances the gradients of the shared parameters"):
        trainer.train(tf.constant(1))


def test_config_starts_with_parts_frozen():
    params = exp_factory.get_exp_config("shapes")
    params.override({"task": {"frozen_parts": ["encoder", "square"]}})
    model = model_factory.build_model(params.task)
    assert not model.encoder.trainable and not model.heads["square"].trainable
    assert model.heads["circle"].trainable
    params.override({"task": {"frozen_parts": ["decoder"]}})
    with pytest.raises(ValueError, match="task.frozen_parts: ShapesModel has no part 'decoder'; parts: encoder, "):
        model_factory.build_model(params.task)


@pytest.mark.parametrize("method", ["uw", "pcgrad"])
def test_weighted_joint_step_respects_a_frozen_head(method):
    with tf.distribute.get_strategy().scope():
        balancer = weighting.get_weighting(method, 2)
    trainer, model = _trainer(tf.distribute.get_strategy(), weighting=balancer)
    model.freeze("foo")
    foo_before = _values(model.heads["foo"].variables)
    others = model.heads["bar"].variables + model.encoder.variables
    others_before = _values(others)
    trainer.train(tf.constant(3))
    assert _unchanged(foo_before, model.heads["foo"].variables)
    assert _all_changed(others_before, others)


@pytest.mark.parametrize("kind", ["joint", "interleaving"])
def test_head_unfrozen_later_is_untouched_while_its_task_is_disabled(kind):
    trainer, model = _trainer(tf.distribute.get_strategy(), kind=kind, freeze=("bar",))
    trainer.train(tf.constant(2))  # Adam's moments of the encoder and foo are non-zero now.
    model.unfreeze("bar")
    trainer.train(tf.constant(2))
    trainer._multi_task.disable_task("bar")  # pylint: disable=protected-access
    before = _values(model.heads["bar"].variables)
    trainer.train(tf.constant(3))
    assert _unchanged(before, model.heads["bar"].variables)
