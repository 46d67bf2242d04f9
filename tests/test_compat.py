"""Tests for the backwards-compatibility wrapper and progressive migration."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model
from multitask import base_trainer
from multitask import compat
from multitask import multitask


def _encoder_heads():
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="relu")])
    model = base_model.EncoderHeadsModel(encoder, {"foo": keras.layers.Dense(1), "bar": keras.layers.Dense(2)})
    model.build()
    return model


def test_wrapper_returns_the_primary_head_output():
    model = _encoder_heads()
    wrapper = compat.BackwardsCompatibilityWrapper(model, "foo")
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    np.testing.assert_allclose(wrapper(x).numpy(), model.sub_tasks["foo"](x).numpy(), rtol=1e-6)
    outputs = wrapper.get_all_outputs(x)
    assert set(outputs) == {"foo", "bar"} and outputs["bar"].shape == (4, 2)
    np.testing.assert_allclose(outputs["bar"].numpy(), model.sub_tasks["bar"](x).numpy(), rtol=1e-6)
    wrapper.set_primary_task("bar")
    np.testing.assert_allclose(wrapper(x).numpy(), outputs["bar"].numpy(), rtol=1e-6)
    assert {id(v) for v in wrapper.trainable_variables} >= {id(v) for v in model.sub_tasks["bar"].trainable_variables}
    with pytest.raises(KeyError, match="baz"):
        wrapper.set_primary_task("baz")


def test_migrated_model_reproduces_the_single_task_outputs(tmp_path):
    keras.utils.set_random_seed(1)
    foo = toy.ToyTask(toy.FooConfig())
    single = foo.build_model()
    single.head.kernel.assign(single.head.kernel + 1.0)  # anything but the fresh init
    path = tf.train.Checkpoint(model=single).save(str(tmp_path / "single"))

    multi_model = toy.ToyMultiTaskModel()
    compat.migrate_single_task(multi_model, "foo", str(tmp_path))
    x, _ = toy.toy_arrays(7, 16)
    np.testing.assert_allclose(multi_model.sub_tasks["foo"](x).numpy(), single(x).numpy(), rtol=1e-6)
    wrapper = compat.BackwardsCompatibilityWrapper(multi_model, "foo")
    np.testing.assert_allclose(wrapper(x).numpy(), single(x).numpy(), rtol=1e-6)

    # The new task trains on with the old one (variables move from there).
    mt = multitask.MultiTask([foo, toy.ToyTask(toy.BarConfig())])
    trainer = base_trainer.MultiTaskBaseTrainer(mt, multi_model, keras.optimizers.SGD(0.01))
    trainer.train(tf.constant(2))
    assert not np.allclose(multi_model.sub_tasks["foo"](x).numpy(), single(x).numpy())
    with pytest.raises(ValueError, match="does not hold"):
        compat.migrate_single_task(multi_model, "bar", path, item="encoder")
