"""Tests for MultiTaskBaseModel: sharing, building, checkpoints, warm start."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model


def test_shared_layer_is_one_set_of_variables():
    model = toy.ToyMultiTaskModel()
    model.build()
    foo, bar = model.sub_tasks["foo"], model.sub_tasks["bar"]
    assert foo.shared is bar.shared
    assert foo.shared.kernel is bar.shared.kernel
    # shared kernel+bias once, plus one head (kernel+bias) per task.
    assert len(model.trainable_variables) == 2 + 2 + 2
    ids = [id(v) for v in model.trainable_variables]
    assert len(set(ids)) == len(ids)
    assert {id(v) for v in foo.shared.trainable_variables} <= set(ids)


def test_build_creates_variables_from_inputs():
    model = toy.ToyMultiTaskModel()
    assert not model.sub_tasks["foo"].built
    model.build()
    assert all(m.built for m in model.sub_tasks.values())
    assert model.sub_tasks["foo"].head.kernel.shape == (3, 1)


def test_build_without_inputs_names_the_task():
    class NoInputs(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    class Model(base_model.MultiTaskBaseModel):
        def _instantiate_sub_tasks(self):
            return {"lonely": NoInputs()}

    with pytest.raises(ValueError, match="'lonely'.*not built"):
        Model().build()


def test_checkpoint_round_trip(tmp_path):
    model = toy.ToyMultiTaskModel()
    model.build()
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = [v.numpy().copy() for v in model.variables]
    for v in model.variables:
        v.assign(tf.zeros_like(v))
    tf.train.Checkpoint(model=model).read(path).assert_existing_objects_matched()
    for value, v in zip(saved, model.variables):
        np.testing.assert_array_equal(value, v.numpy())


def test_initialize_warm_starts_checkpoint_items(tmp_path):
    source = toy.ToyMultiTaskModel()
    source.build()
    tf.train.Checkpoint(shared=source.shared).save(str(tmp_path / "ckpt"))
    target = toy.ToyMultiTaskModel(init_checkpoint=str(tmp_path))
    target.build()
    target.initialize()
    np.testing.assert_array_equal(target.shared.kernel.numpy(), source.shared.kernel.numpy())
    # Task heads are not checkpoint items: they keep their own initialization.
    assert not np.array_equal(
        target.sub_tasks["foo"].head.kernel.numpy(), source.sub_tasks["foo"].head.kernel.numpy()
    )


def test_initialize_rejects_directory_without_checkpoint(tmp_path):
    model = toy.ToyMultiTaskModel(init_checkpoint=str(tmp_path))
    model.build()
    with pytest.raises(ValueError, match="without any checkpoint"):
        model.initialize()


def test_task_model_lookup():
    model = toy.ToyMultiTaskModel()
    assert base_model.task_model(model, "foo") is model.sub_tasks["foo"]
    with pytest.raises(KeyError, match="'baz' has no sub-model.*foo, bar"):
        base_model.task_model(model, "baz")
    single = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert base_model.task_model(single, "anything") is single
