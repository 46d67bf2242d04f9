"""Tiny shared-input tasks and a plugin head/encoder for the modeling tests.

Importing this module registers (once per process) a `test_logits` head (a
Dense layer of class logits) and a `counting_mlp` encoder that counts its
calls in a variable, so a test can tell how often a joint step ran it.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from official.core import config_definitions as cfg

from multitask import base_trainer
from multitask import multitask
from multitask.core import base_task
from multitask.modeling import encoders
from multitask.modeling import registry
from multitask.modeling import shared_encoder_model

TASKS = ("a", "b")


@registry.register_head("test_logits")
class LogitsHead(keras.layers.Dense):
    """A plugin head: `num_classes` logits."""

    def __init__(self, num_classes: int = 2, **kwargs):
        super().__init__(num_classes, **kwargs)


@registry.register_encoder("counting_mlp")
class CountingMLP(encoders.MLPEncoder):
    """A plugin encoder: an MLP that counts its calls (on the first replica)."""

    def __init__(self, hidden_sizes=(4,), **kwargs):
        super().__init__(hidden_sizes=hidden_sizes, **kwargs)
        self.calls = self.add_weight(name="calls", shape=(), initializer="zeros", trainable=False,
                                     aggregation="only_first_replica")

    def call(self, inputs, training=None):
        self.calls.assign_add(1.0)
        return super().call(inputs, training=training)


@dataclasses.dataclass
class LabelTaskConfig(cfg.TaskConfig):
    name: str = "a"


class LabelTask(base_task.Task):
    """Classification of `labels[name]`: softmax cross-entropy and accuracy."""

    def build_inputs(self, params, input_context=None):
        raise NotImplementedError("the modeling tests feed one shared dataset")

    def build_losses(self, labels, model_outputs, aux_losses=None):
        loss = keras.losses.sparse_categorical_crossentropy(labels, model_outputs, from_logits=True)
        return tf.reduce_mean(tf.cast(loss, tf.float32))

    def build_metrics(self, training=True):
        return [keras.metrics.SparseCategoricalAccuracy("accuracy")]


def features(kind: str, n: int = 16, seed: int = 0):
    """`n` examples of features: "vector" [n, 4], "image" [n, 8, 8, 1] or "modalities" (a dict)."""
    rng = np.random.default_rng(seed)
    if kind == "vector":
        return rng.normal(size=(n, 4)).astype(np.float32)
    if kind == "image":
        return rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
    return {"x": rng.normal(size=(n, 4)).astype(np.float32), "y": rng.normal(size=(n, 3)).astype(np.float32),
            "z": rng.normal(size=(n, 2)).astype(np.float32)}


INPUTS = {"vector": {"input_shape": (4,)}, "image": {"input_shape": (8, 8, 1)},
          "modalities": {"input_shapes": {"x": [4], "y": [3], "z": [2]}}}


def shared_dataset(kind: str, n: int = 16, batch_size: int = 8) -> tf.data.Dataset:
    """Repeating global batches of `(features, {"a": labels, "b": labels})`."""
    x = features(kind, n)
    flat = np.concatenate([np.reshape(v, (n, -1)) for v in tf.nest.flatten(x)], axis=1)
    labels = {"a": (flat[:, 0] > 0).astype(np.int32), "b": (flat[:, 1] > flat[:, 2]).astype(np.int32)}
    return tf.data.Dataset.from_tensor_slices((x, labels)).repeat().batch(batch_size, drop_remainder=True)


def model_config(kind: str = "vector", encoder=None, architecture=None, **kwargs):
    """A SharedEncoderModelConfig with a `test_logits` head per task."""
    encoder = encoder or {"type": "mlp", "hidden_sizes": [6, 5]}
    architecture = architecture or {"type": "hard_sharing"}
    params = dict(INPUTS[kind], encoder=encoder, architecture=architecture,
                  heads={name: {"type": "test_logits", "num_classes": 2} for name in TASKS})
    params.update(kwargs)
    return shared_encoder_model.SharedEncoderModelConfig(default_params=params)


def multi_task() -> multitask.MultiTask:
    return multitask.MultiTask([LabelTask(LabelTaskConfig(name=name)) for name in TASKS])


def trainer(strategy, model_fn, kind: str = "vector", **kwargs):
    """A joint trainer on the shared dataset; the model is built in the strategy's scope."""
    with strategy.scope():
        model = model_fn()
        result = base_trainer.MultiTaskBaseTrainer(
            multi_task(), model, keras.optimizers.Adam(0.01), train_datasets=shared_dataset(kind), **kwargs)
    return result, model
