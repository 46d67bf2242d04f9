"""Two tiny regression tasks that share a layer, for the core tests.

Task "foo" and task "bar" each map 2 features to 1 output through a shared
linear layer (2 -> 3) and a linear head of their own (3 -> 1), with a mean
squared error loss, so one step's update has a closed form.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import task_factory

from multitask import base_model
from multitask.core import base_task


def toy_arrays(seed: int, n: int = 64):
    """Returns features [n, 2] and targets [n, 1] of a noisy linear function."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x @ np.array([[1.5], [-2.0]], np.float32) + 0.5 + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)
    return x, y


@dataclasses.dataclass
class ToyDataConfig(cfg.DataConfig):
    seed: int = 0
    num_examples: int = 64
    global_batch_size: int = 8
    is_training: bool = True


@dataclasses.dataclass
class FooConfig(cfg.TaskConfig):
    name: str = "foo"
    train_data: ToyDataConfig = dataclasses.field(default_factory=lambda: ToyDataConfig(seed=1))
    validation_data: ToyDataConfig = dataclasses.field(
        default_factory=lambda: ToyDataConfig(seed=2, is_training=False)
    )


@dataclasses.dataclass
class BarConfig(FooConfig):
    name: str = "bar"
    train_data: ToyDataConfig = dataclasses.field(default_factory=lambda: ToyDataConfig(seed=3))
    validation_data: ToyDataConfig = dataclasses.field(
        default_factory=lambda: ToyDataConfig(seed=4, is_training=False)
    )


class ToyModel(keras.Model):
    """shared (2->3) then head (3->1); the shared layer comes from outside."""

    def __init__(self, shared, **kwargs):
        super().__init__(**kwargs)
        self.shared = shared
        self.head = keras.layers.Dense(1, kernel_initializer="glorot_uniform")
        self.inputs = keras.Input((2,))

    def call(self, x):
        return self.head(self.shared(x))


class ToyTask(base_task.Task):
    """Regression on `toy_arrays`; MSE loss and MAE metric."""

    def build_model(self):
        model = ToyModel(keras.layers.Dense(3))
        model(model.inputs)
        return model

    def build_inputs(self, params, input_context=None):
        x, y = toy_arrays(params.seed, params.num_examples)
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        batch_size = params.global_batch_size
        if input_context:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if params.is_training:
            dataset = dataset.repeat()
        return dataset.batch(batch_size, drop_remainder=params.is_training)

    def build_losses(self, labels, model_outputs, aux_losses=None):
        return tf.reduce_mean(tf.square(labels - tf.cast(model_outputs, tf.float32)))

    def build_metrics(self, training=True):
        return [keras.metrics.MeanAbsoluteError("mae")]


task_factory.register_task_cls(FooConfig)(ToyTask)
task_factory.register_task_cls(BarConfig)(ToyTask)


class ToyMultiTaskModel(base_model.MultiTaskBaseModel):
    """foo and bar sub-models over one shared Dense(3)."""

    def __init__(self, **kwargs):
        self.shared = keras.layers.Dense(3, name="shared")
        super().__init__(**kwargs)

    def _instantiate_sub_tasks(self):
        return {"foo": ToyModel(self.shared, name="foo"), "bar": ToyModel(self.shared, name="bar")}

    @property
    def checkpoint_items(self):
        return {"shared": self.shared}
