"""The user's model: a plain subclassed Keras tower shared by one head per task.

`InteractionTower` has no `inputs` and no `build()`: Keras creates its
variables on its first call, which the trainers make on Keras inputs shaped
like the task's data.
"""
import dataclasses
from typing import Tuple

import keras

from official.modeling import hyperparams

from multitask import base_model
from multitask import model_factory
from my_project import data


@keras.saving.register_keras_serializable(package="my_project")
class InteractionTower(keras.Model):
    """Embeds the user and the item, appends the context, then one ReLU layer."""

    def __init__(self, embedding_dim: int = 8, hidden_units: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim, self.hidden_units = embedding_dim, hidden_units
        self.user_embedding = keras.layers.Embedding(data.NUM_USERS, embedding_dim)
        self.item_embedding = keras.layers.Embedding(data.NUM_ITEMS, embedding_dim)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu")

    def call(self, features, training=None):
        x = keras.ops.concatenate(
            [self.user_embedding(features["user"]), self.item_embedding(features["item"]), features["context"]],
            axis=-1)
        return self.hidden(x)

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "hidden_units": self.hidden_units}


@dataclasses.dataclass
class InteractionsModelConfig(hyperparams.Config):
    embedding_dim: int = 8
    hidden_units: int = 16
    task_names: Tuple[str, ...] = ("rating", "click")


@model_factory.register_model_cls(InteractionsModelConfig)
class InteractionsModel(base_model.EncoderHeadsModel):
    """One `InteractionTower` shared by a Dense(1) head per task."""

    def __init__(self, config: InteractionsModelConfig, init_checkpoint: str = "", **kwargs):
        super().__init__(
            InteractionTower(config.embedding_dim, config.hidden_units, name="tower"),
            {name: keras.layers.Dense(1, name=f"{name}_head") for name in config.task_names},
            init_checkpoint=init_checkpoint, **kwargs)
