"""A tiny partially labelled shared dataset and encoder for the HeadTask tests.

`PartialDataConfig`'s reader yields `(features [b, 3], {"kind": class ids,
"size": floats})`: "kind" is -1 where `i % 8 in (0, 1, 2)` and "size" is NaN
where `i % 8 == 7`, so the two halves of a batch of 8 split over two replicas
hold different numbers of labels. `labelled_only` keeps only the examples
labelled for `labelled_only`'s task. The tasks "kind_contrastive" and
"kind_ranking" read the "kind" ids with embedding heads. The encoder "head_toy_dense" (one tanh
Dense over 3 features) is registered for `HeadTaskConfig.encoder`.
"""
import dataclasses
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from official.core import config_definitions as cfg

from multitask import base_model
from multitask import base_trainer
from multitask import input_factory
from multitask import interleaving_trainer
from multitask import multitask as multitask_lib
from multitask import task_sampler
from multitask import weighting
from multitask.modeling import head_task
from multitask.modeling import registry

NUM_FEATURES = 3


def arrays(num_examples: int = 32, seed: int = 0):
    """Features and the partial labels `{"kind": int32, "size": float32}`."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(num_examples, NUM_FEATURES)).astype(np.float32)
    kind = (features[:, 0] > 0).astype(np.int32) + (features[:, 1] > 0.5).astype(np.int32)
    size = (features @ np.array([1.0, -0.5, 0.25])).astype(np.float32)
    position = np.arange(num_examples) % 8
    kind[position < 3] = -1
    size[position == 7] = np.nan
    return features, {"kind": kind, "size": size}


@dataclasses.dataclass
class PartialDataConfig(cfg.DataConfig):
    """The toy data; finite unless `repeat`; `labelled_only` names a task to filter on."""

    num_examples: int = 32
    seed: int = 0
    global_batch_size: int = 8
    repeat: bool = False
    labelled_only: str = ""


@input_factory.register_shared_inputs(PartialDataConfig)
def partial_inputs(data_config: PartialDataConfig, input_context=None):
    features, labels = arrays(data_config.num_examples, data_config.seed)
    if data_config.labelled_only:
        target = labels[data_config.labelled_only]
        keep = ~np.isnan(target) if target.dtype.kind == "f" else target >= 0
        features, labels = features[keep], {key: value[keep] for key, value in labels.items()}
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    batch_size = data_config.global_batch_size
    if input_context:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if data_config.repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=data_config.repeat)


@registry.register_encoder("head_toy_dense")
def dense_encoder(units: int = 4):
    """One tanh Dense over the toy features, built."""
    return keras.Sequential([keras.Input((NUM_FEATURES,)), keras.layers.Dense(units, activation="tanh")])


HEADS = {
    "kind": dict(type="classification", num_classes=3),
    "size": dict(type="regression"),
    # The embedding heads read the "kind" ids: same kind = positive pair.
    "kind_contrastive": dict(type="contrastive", embedding_size=3, temperature=0.5),
    "kind_ranking": dict(type="ranking", embedding_size=3, margin=2.0, mining="all"),
}


def task_config(name: str, batch_size: int = 8, **data) -> head_task.HeadTaskConfig:
    """The HeadTask of toy task `name` (a key of HEADS)."""
    return head_task.HeadTaskConfig(
        name=name,
        head=head_task.HeadConfig(**HEADS[name]),
        label_key="kind" if name.startswith("kind") else "size",
        encoder={"type": "head_toy_dense", "units": 4},
        train_data=PartialDataConfig(global_batch_size=batch_size, repeat=True),
        validation_data=PartialDataConfig(global_batch_size=batch_size, is_training=False, **data),
    )


def model(task_names=("kind", "size"), hidden: Optional[int] = 4):
    """An EncoderHeadsModel over the toy encoder with the toy heads, built."""
    result = base_model.EncoderHeadsModel(
        dense_encoder(hidden),
        {name: head_task.build_head(HEADS[name], name=f"{name}_head") for name in task_names},
    )
    result.build()
    return result


def train(strategy, trainer_type, task_names=("kind", "size"), init=None, method=None, rep_grad=False, steps=3,
          learning_rate=0.1):
    """Trains the toy tasks with SGD from `init` (trainable values; None: seed 0's).

    The joint trainer reads the shared toy data; the interleaving one each
    task's own. Returns (variables before, variables after, the train logs).
    """
    keras.utils.set_random_seed(0)
    shared = PartialDataConfig(repeat=True)
    with strategy.scope():
        multi_task = multitask_lib.MultiTask([head_task.HeadTask(task_config(name)) for name in task_names])
        built = model(task_names)
        optimizer = keras.optimizers.SGD(learning_rate)
        if trainer_type == "interleaving":
            trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
                multi_task, built, optimizer, task_sampler.UniformTaskSampler(multi_task.task_weights)
            )
        else:
            trainer = base_trainer.MultiTaskBaseTrainer(
                multi_task, built, optimizer,
                weighting=weighting.get_weighting(method, len(task_names)) if method else None, rep_grad=rep_grad,
                train_datasets=lambda input_context=None: partial_inputs(shared, input_context),
            )
    if init is not None:
        for variable, value in zip(built.trainable_variables, init):
            variable.assign(value)
    before = [v.numpy().copy() for v in built.trainable_variables]
    logs = trainer.train(tf.constant(steps))
    return before, [v.numpy() for v in built.trainable_variables], logs
