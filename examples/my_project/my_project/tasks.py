"""The user's Task: one class for both targets (its config's `target` picks one)."""
import dataclasses

import keras
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import task_factory

from multitask.core import base_task
from my_project import data

TARGETS = ("rating", "click")


@dataclasses.dataclass
class InteractionsDataConfig(cfg.DataConfig):
    split: str = "train"
    num_examples: int = 2000
    global_batch_size: int = 64
    is_training: bool = True


@dataclasses.dataclass
class InteractionsTaskConfig(cfg.TaskConfig):
    target: str = "rating"
    train_data: InteractionsDataConfig = dataclasses.field(default_factory=InteractionsDataConfig)
    validation_data: InteractionsDataConfig = dataclasses.field(
        default_factory=lambda: InteractionsDataConfig(split="validation", num_examples=500, is_training=False))


@task_factory.register_task_cls(InteractionsTaskConfig)
class InteractionsTask(base_task.Task):
    """Rating regression (MSE, RMSE) or click prediction (logistic loss, accuracy)."""

    def build_inputs(self, params, input_context=None):
        features, targets = data.interactions(params.split, params.num_examples)
        dataset = tf.data.Dataset.from_tensor_slices((features, targets[self.task_config.target]))
        batch_size = params.global_batch_size
        if input_context:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if params.is_training:
            dataset = dataset.shuffle(1024, seed=0).repeat()
        return dataset.batch(batch_size, drop_remainder=params.is_training)

    def build_losses(self, labels, model_outputs, aux_losses=None):
        outputs = tf.cast(model_outputs, tf.float32)
        if self.task_config.target == "rating":
            return tf.reduce_mean(tf.square(labels - outputs))
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, outputs))

    def build_metrics(self, training=True):
        if self.task_config.target == "rating":
            return [keras.metrics.RootMeanSquaredError("rmse")]
        return [keras.metrics.BinaryAccuracy("accuracy", threshold=0.0)]
