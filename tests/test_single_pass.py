"""The joint step's single pass: any model with `encode` / `task_outputs` encodes a shared batch once."""
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model
from multitask import base_trainer
from multitask import multitask

X, Y = toy.toy_arrays(5)
PER_TASK = "The joint step runs each task's model on its own"


class CountingEncoder(keras.layers.Layer):
    """A Dense encoder that counts its calls while the step is traced."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4, activation="tanh")
        self.traced_calls = 0

    def call(self, inputs):
        self.traced_calls += 1
        return self.dense(inputs)


class SplitModel(base_model.MultiTaskBaseModel):
    """Not an EncoderHeadsModel: its own encode / task_outputs, no task_layer_losses, regularised heads."""

    def __init__(self, **kwargs):
        self.encoder = CountingEncoder()
        self.heads = {name: keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.1))
                      for name in ("foo", "bar")}
        super().__init__(**kwargs)

    def _instantiate_sub_tasks(self):
        return {name: keras.Sequential([self.encoder, head]) for name, head in self.heads.items()}

    def encode(self, features, training=False):
        return self.encoder(features, training=training)

    def task_outputs(self, task_name, representation, training=False):
        return self.heads[task_name](representation, training=training)


class UnsplitModel(SplitModel):
    encode = None


def _train(model_cls, shared=True, steps=3):
    keras.utils.set_random_seed(0)
    tasks = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
    model = model_cls()
    data = tf.data.Dataset.from_tensor_slices((X, {"foo": Y, "bar": -0.5 * Y + 1.0})).repeat().batch(8)
    trainer = base_trainer.MultiTaskBaseTrainer(tasks, model, keras.optimizers.SGD(0.1),
                                                train_datasets=data if shared else None)
    model.encoder.traced_calls = 0
    trainer.train(tf.constant(steps))
    return model


def test_a_model_with_encode_and_task_outputs_encodes_once_and_trains_as_per_task_passes(caplog):
    """One encoder call per traced step for two tasks, the heads' regularisation
    losses included (from the sub-models' layers), and the same variables as
    running each task's sub-model on its own."""
    with caplog.at_level(logging.INFO, logger="absl"):
        split = _train(SplitModel)
    assert split.encoder.traced_calls == 1
    assert PER_TASK not in caplog.text
    unsplit = _train(UnsplitModel)
    assert unsplit.encoder.traced_calls == 2
    for a, b in zip(split.trainable_variables, unsplit.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("model_cls, shared, why", [
    (UnsplitModel, True, "the model (UnsplitModel) has no encode(features, training) and task_outputs"),
    (SplitModel, False, "each task reads its own train data; one shared dataset for all tasks"),
])
def test_the_trainer_says_why_the_single_pass_is_off(model_cls, shared, why, caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        _train(model_cls, shared=shared, steps=1)
    lines = [record.getMessage() for record in caplog.records if PER_TASK in record.getMessage()]
    assert len(lines) == 1 and why in lines[0], lines
