"""The `penguins` experiment: three tasks with mixed heads and partial labels.

Built from the Palmer penguins data bundled with the `palmerpenguins` package
(CC0; 344 penguins of three species, nothing is downloaded). Two penguins
without any measurement are dropped; the other 342 give:

- features (6): bill length, bill depth and flipper length, standardised with
  the train split's mean and standard deviation, and the island one-hot;
- `species`: 3 classes (Adelie, Chinstrap, Gentoo), a classification head;
- `sex`: female 0 / male 1, a binary head; the 9 penguins of unknown sex are
  labelled -1, i.e. unlabelled for this task only;
- `body_mass`: grams standardised with the train split's statistics, a
  regression head (MSE; `body_mass_scale` turns its MAE back into grams).

All tasks read one dataset of `(features, {task: labels})` (shared input): the
joint trainer reads it through `task.shared_train_data`, and each task, a
`HeadTask`, takes its own labels from it for evaluation or to train alone.
The penguins are permuted with `seed` and split 70/15/15 into train,
validation and test, so the split is deterministic.

The model is built from its config (`SharedEncoderModelConfig`): an `mlp`
encoder shared by one head per task, of the same head configs as the tasks
(`HEADS`).
"""
import dataclasses
import functools
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import exp_factory

from multitask import configs
from multitask import input_factory
from multitask.modeling import head_task
from multitask.modeling import shared_encoder_model

TASKS = ("species", "sex", "body_mass")
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPECIES = ("Adelie", "Chinstrap", "Gentoo")
ISLANDS = ("Biscoe", "Dream", "Torgersen")
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm")
NUM_FEATURES = len(MEASUREMENTS) + len(ISLANDS)
DEFAULT_SEED = 0
# One head per task; the tasks' losses and the model's heads both come from here.
HEADS = {
    "species": dict(type="classification", num_classes=len(SPECIES)),
    "sex": dict(type="binary"),
    "body_mass": dict(type="regression", loss="mse"),
}


def check_split(split: str) -> None:
    """Raises a ValueError unless `split` is one of `SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split is {split!r}; allowed: {', '.join(SPLITS)}.")


@functools.lru_cache(maxsize=1)
def _table():
    """The bundled table without the penguins that have no measurement."""
    from palmerpenguins import load_penguins  # pylint: disable=g-import-not-at-top

    table = load_penguins()
    return table.dropna(subset=list(MEASUREMENTS) + ["body_mass_g"]).reset_index(drop=True)


def split_indices(num_rows: int, seed: int = DEFAULT_SEED) -> Dict[str, np.ndarray]:
    """`{split: row indices}`: a permutation by `seed`, cut 70/15/15, disjoint and complete."""
    order = np.random.default_rng(seed).permutation(num_rows)
    train = int(SPLIT_FRACTIONS[0] * num_rows)
    validation = int(SPLIT_FRACTIONS[1] * num_rows)
    return {
        "train": order[:train],
        "validation": order[train : train + validation],
        "test": order[train + validation :],
    }


def penguins_arrays(split: str, seed: int = DEFAULT_SEED) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """One split as numpy arrays, standardised with the train split's statistics.

    Returns:
      `(features float32 [n, 6], {"species": int32 [n], "sex": int32 [n] (-1 =
      unknown), "body_mass": float32 [n] (standardised)})`.

    Raises:
      ValueError: An unknown split.
    """
    check_split(split)
    table = _table()
    rows = split_indices(len(table), seed)
    train, part = table.iloc[rows["train"]], table.iloc[rows[split]]
    measurements = part[list(MEASUREMENTS)].to_numpy(np.float64)
    mean, std = train[list(MEASUREMENTS)].mean().to_numpy(), train[list(MEASUREMENTS)].std().to_numpy()
    islands = (part["island"].to_numpy()[:, None] == np.array(ISLANDS)[None, :]).astype(np.float64)
    features = np.concatenate([(measurements - mean) / std, islands], axis=1).astype(np.float32)
    sex = part["sex"].map({"female": 0, "male": 1}).fillna(-1).to_numpy(np.int32)
    mass_mean, mass_std = body_mass_scale(seed)
    labels = {
        "species": part["species"].map({name: i for i, name in enumerate(SPECIES)}).to_numpy(np.int32),
        "sex": sex,
        "body_mass": ((part["body_mass_g"].to_numpy(np.float64) - mass_mean) / mass_std).astype(np.float32),
    }
    return features, labels


def body_mass_scale(seed: int = DEFAULT_SEED) -> Tuple[float, float]:
    """`(mean, std)` in grams of the train split's body mass: grams = mean + std * target."""
    table = _table()
    mass = table.iloc[split_indices(len(table), seed)["train"]]["body_mass_g"]
    return float(mass.mean()), float(mass.std())


@dataclasses.dataclass
class PenguinsDataConfig(cfg.DataConfig):
    """One split of the penguins data, with the labels of every task.

    Attributes:
      dataset: Always "penguins".
      split: "train", "validation" or "test". The train split repeats and
        shuffles (when `is_training` is not False); the others are finite and
        keep their last partial batch.
      seed: Seeds the split (use one seed for all splits) and the shuffling.
    """

    dataset: str = "penguins"
    split: str = "train"
    seed: Optional[int] = DEFAULT_SEED
    global_batch_size: int = 32
    is_training: Optional[bool] = True
    drop_remainder: bool = True
    shuffle_buffer_size: int = 1000


@input_factory.register_shared_inputs(PenguinsDataConfig)
def penguins_inputs(
    data_config: PenguinsDataConfig, input_context: Optional[tf.distribute.InputContext] = None
) -> tf.data.Dataset:
    """Batches of `(features [b, 6], {"species", "sex", "body_mass": [b]})` of one split.

    Raises:
      ValueError: An unknown dataset or split.
    """
    if data_config.dataset != "penguins":
        raise ValueError(f"dataset is {data_config.dataset!r}; this reader reads only 'penguins'.")
    seed = DEFAULT_SEED if data_config.seed is None else data_config.seed
    dataset = tf.data.Dataset.from_tensor_slices(penguins_arrays(data_config.split, seed))
    batch_size = data_config.global_batch_size
    if input_context:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        if input_context.num_input_pipelines > 1:
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    training = data_config.split == "train" and data_config.is_training is not False
    if training:
        dataset = dataset.shuffle(max(data_config.shuffle_buffer_size, 1), seed=seed).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=training and data_config.drop_remainder)
    # Small in-memory tensors: without tf.data's autotuning thread an unfinished
    # iterator is deleted at once (see experiments/shapes.py).
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def _head_config(name: str) -> head_task.HeadConfig:
    return head_task.HeadConfig(**HEADS[name])


def penguins_model_config(hidden_sizes=(32, 32)) -> shared_encoder_model.SharedEncoderModelConfig:
    """The config-built model: an MLP encoder shared by the heads of `HEADS`."""
    return shared_encoder_model.SharedEncoderModelConfig(
        input_shape=(NUM_FEATURES,),
        encoder=shared_encoder_model.block("mlp", hidden_sizes=list(hidden_sizes)),
        heads={name: dict(HEADS[name]) for name in TASKS},
    )


def penguins_task_config(name: str, global_batch_size: int = 32) -> head_task.HeadTaskConfig:
    """The HeadTask of task `name`, reading the shared penguins data.

    Raises:
      ValueError: An unknown task name.
    """
    if name not in TASKS:
        raise ValueError(f"task is {name!r}; allowed: {', '.join(TASKS)}.")
    return head_task.HeadTaskConfig(
        name=name,
        head=_head_config(name),
        train_data=PenguinsDataConfig(split="train", global_batch_size=global_batch_size),
        validation_data=PenguinsDataConfig(
            split="validation", global_batch_size=global_batch_size, is_training=False, drop_remainder=False
        ),
    )


@exp_factory.register_config_factory("penguins")
def penguins() -> configs.MultiTaskExperimentConfig:
    """species, sex and body_mass trained jointly on one shared dataset and MLP."""
    train_steps = 1000
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(
            model=penguins_model_config(),
            task_routines=tuple(
                configs.TaskRoutine(task_name=name, task_config=penguins_task_config(name)) for name in TASKS
            ),
            shared_train_data=PenguinsDataConfig(split="train"),
        ),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type="joint",
            optimizer_config=cfg.OptimizationConfig(
                {
                    "optimizer": {"type": "adam"},
                    "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.003}},
                }
            ),
            train_steps=train_steps,
            steps_per_loop=250,
            summary_interval=250,
            validation_interval=250,
            checkpoint_interval=500,
            max_to_keep=2,
            validation_steps=-1,
        ),
        runtime=cfg.RuntimeConfig(distribution_strategy="mirrored", num_gpus=0),
    )
