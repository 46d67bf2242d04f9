"""The `text_tags` experiment: a KerasHub BERT backbone shared by two text tasks.

A tiny `keras_hub.models.BertBackbone`, built from its constructor with
random weights (no preset, no download), is the shared encoder of two tasks
on synthetic token sequences:

- `topic`: one of 4 topics per sequence, from the backbone's `pooled_output`
  (its [CLS] position);
- `tags`: one of 4 word classes per token, from its `sequence_output`.

Data. The vocabulary has a padding id 0, a [CLS] id 1 and 32 words (ids
2..33); word `w` belongs to class `(w - 2) // 8`. A sequence is [CLS]
followed by `SEQUENCE_LENGTH - 1` words, each drawn from a class picked for
the sequence with probability 1/2, else uniformly; its topic is its most
frequent word class (the lowest on ties), its tags the class of every word
(-1 at [CLS], which the loss and the metric skip). Each split draws its own
sequences from its own seed.

The backbone takes a dict (`token_ids`, `segment_ids`, `padding_mask`) and
returns a dict (`sequence_output`, `pooled_output`); the heads are
functional Keras models over that dict (`model_inputs.output_head`), so the
`.keras` export reloads with Keras and KerasHub alone, and the SavedModel
export serves the three inputs by name. `keras-hub` is an optional
dependency (`pip install keras-hub`, in the `test` extra).
"""
import dataclasses
from typing import Tuple

import keras
import numpy as np
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import task_factory
from official.modeling import hyperparams

from multitask import base_model
from multitask import configs
from multitask import model_factory
from multitask import model_inputs
from multitask.core import base_task

TASKS = ("topic", "tags")
SEQUENCE_LENGTH = 12
NUM_CLASSES = 4
WORDS_PER_CLASS = 8
FIRST_WORD = 2  # 0 is padding, 1 is [CLS].
VOCABULARY_SIZE = FIRST_WORD + NUM_CLASSES * WORDS_PER_CLASS
SPLIT_SEEDS = {"train": 10, "validation": 11, "test": 12}


def text_tags_arrays(split: str, num_examples: int):
    """Returns `(features, {"topic": [n], "tags": [n, SEQUENCE_LENGTH]})` as numpy arrays."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split is {split!r}; allowed: {', '.join(SPLIT_SEEDS)}.")
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    words = SEQUENCE_LENGTH - 1
    favoured = rng.integers(0, NUM_CLASSES, (num_examples, 1))
    classes = np.where(rng.random((num_examples, words)) < 0.5, favoured,
                       rng.integers(0, NUM_CLASSES, (num_examples, words)))
    token_ids = FIRST_WORD + classes * WORDS_PER_CLASS + rng.integers(0, WORDS_PER_CLASS, classes.shape)
    counts = np.stack([(classes == c).sum(axis=1) for c in range(NUM_CLASSES)], axis=1)
    features = {
        "token_ids": np.concatenate([np.ones((num_examples, 1)), token_ids], axis=1).astype(np.int32),
        "segment_ids": np.zeros((num_examples, SEQUENCE_LENGTH), np.int32),
        "padding_mask": np.ones((num_examples, SEQUENCE_LENGTH), np.int32),
    }
    tags = np.concatenate([-np.ones((num_examples, 1)), classes], axis=1).astype(np.int32)
    return features, {"topic": counts.argmax(axis=1).astype(np.int32), "tags": tags}


@dataclasses.dataclass
class TextTagsDataConfig(cfg.DataConfig):
    dataset: str = "text_tags"
    split: str = "train"
    num_examples: int = 2048
    global_batch_size: int = 32
    is_training: bool = True
    drop_remainder: bool = True


@dataclasses.dataclass
class TextTagsTaskConfig(cfg.TaskConfig):
    target: str = "topic"
    train_data: TextTagsDataConfig = dataclasses.field(default_factory=TextTagsDataConfig)
    validation_data: TextTagsDataConfig = dataclasses.field(default_factory=lambda: TextTagsDataConfig(
        split="validation", num_examples=512, is_training=False, drop_remainder=False))


def text_tags_dataset(params: TextTagsDataConfig, target=None, input_context=None) -> tf.data.Dataset:
    """Batches of `(features, labels)`: one task's labels, or `{task: labels}` when `target` is None."""
    features, labels = text_tags_arrays(params.split, params.num_examples)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels if target is None else labels[target]))
    batch_size = params.global_batch_size
    if input_context:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if params.is_training:
        dataset = dataset.shuffle(1024, seed=SPLIT_SEEDS[params.split]).repeat()
    return dataset.batch(batch_size, drop_remainder=params.drop_remainder)


@task_factory.register_task_cls(TextTagsTaskConfig)
class TextTagsTask(base_task.Task):
    """`topic` (softmax over 4 topics) or `tags` (softmax per token, -1 skipped); metric "accuracy"."""

    def build_inputs(self, params, input_context=None):
        return text_tags_dataset(params, self.task_config.target, input_context)

    def build_losses(self, labels, model_outputs, aux_losses=None):
        mask = tf.cast(labels >= 0, tf.float32)
        loss = keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), model_outputs, from_logits=True)
        return tf.math.divide_no_nan(tf.reduce_sum(tf.cast(loss, tf.float32) * mask), tf.reduce_sum(mask))

    def build_metrics(self, training=True):
        return [keras.metrics.SparseCategoricalAccuracy("accuracy")]

    def process_metrics(self, metrics, labels, model_outputs, **kwargs):
        for metric in metrics:
            metric.update_state(tf.maximum(labels, 0), model_outputs, sample_weight=tf.cast(labels >= 0, tf.float32))


@dataclasses.dataclass
class TextTagsModelConfig(hyperparams.Config):
    """The backbone's size (BertBackbone's constructor arguments) and the tasks."""

    num_layers: int = 1
    num_heads: int = 2
    hidden_dim: int = 16
    intermediate_dim: int = 32
    dropout: float = 0.0
    task_names: Tuple[str, ...] = TASKS


def bert_backbone(config: TextTagsModelConfig):
    """A `keras_hub.models.BertBackbone` with random weights, from its constructor."""
    try:
        import keras_hub  # pylint: disable=g-import-not-at-top
    except ImportError as error:
        raise ImportError("the text_tags experiment needs KerasHub: pip install keras-hub") from error
    return keras_hub.models.BertBackbone(
        vocabulary_size=VOCABULARY_SIZE, num_layers=config.num_layers, num_heads=config.num_heads,
        hidden_dim=config.hidden_dim, intermediate_dim=config.intermediate_dim, dropout=config.dropout,
        max_sequence_length=SEQUENCE_LENGTH, name="backbone")


@model_factory.register_model_cls(TextTagsModelConfig)
class TextTagsModel(base_model.EncoderHeadsModel):
    """The BertBackbone, a topic head on `pooled_output`, a tag head on `sequence_output`."""

    OUTPUTS = {"topic": "pooled_output", "tags": "sequence_output"}

    def __init__(self, config: TextTagsModelConfig, init_checkpoint: str = "", **kwargs):
        backbone = bert_backbone(config)
        heads = {name: model_inputs.output_head(backbone, self.OUTPUTS[name], keras.layers.Dense(NUM_CLASSES),
                                                name=f"{name}_head")
                 for name in config.task_names}
        super().__init__(backbone, heads, init_checkpoint=init_checkpoint, **kwargs)


def text_tags_task_config(target: str) -> TextTagsTaskConfig:
    return TextTagsTaskConfig(name=target, target=target)


@exp_factory.register_config_factory("text_tags")
def text_tags() -> configs.MultiTaskExperimentConfig:
    """topic and tags trained jointly over one tiny KerasHub BERT backbone."""
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(
            model=TextTagsModelConfig(),
            task_routines=tuple(configs.TaskRoutine(task_name=name, task_config=text_tags_task_config(name))
                                for name in TASKS),
        ),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type="joint",
            optimizer_config=cfg.OptimizationConfig({
                "optimizer": {"type": "adam"},
                "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.003}},
            }),
            train_steps=600, steps_per_loop=100, summary_interval=100, validation_interval=200,
            checkpoint_interval=300, max_to_keep=2, validation_steps=-1,
        ),
        runtime=cfg.RuntimeConfig(distribution_strategy="mirrored", num_gpus=0),
    )
