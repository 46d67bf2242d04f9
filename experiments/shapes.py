"""The `shapes` experiments: three toy 2-D classification tasks over one MLP.

The classic multi-task tutorial problem. Each task has its own data (the
multi-input setting): points drawn uniformly from a square around the origin,
labelled by a geometric rule.

- `circle`: 1 if the point lies inside the unit circle (x^2 + y^2 < 1).
- `square`: 1 if the point lies inside the unit square (|x| <= 1 and |y| <= 1).
- `inv_circle`: 1 if the point lies outside the unit circle.

The sampling square's half-side is chosen per task so that about half of the
points are positive and accuracy means something: a uniform point of
[-a, a]^2 lies in the unit circle with probability pi / (4 a^2), which is 1/2
for a = sqrt(pi / 2) ~ 1.2533 (circle and inv_circle); it lies in the unit
square with probability 1 / a^2, which is 1/2 for a = sqrt(2) ~ 1.4142.
`ShapesDataConfig.half_side` overrides the choice.

Each task draws `num_examples` (1000) points with its own seed, permutes them
with the same seed and splits them 80/10/10 into train/validation/test, so the
three splits are disjoint and identical from run to run.

One Task class, `ShapesTask`, serves all three tasks (its config's `shape`
picks the rule): 2-class softmax logits, sparse cross-entropy loss, and a
sparse categorical accuracy metric named "accuracy". The multi-task model,
`ShapesModel`, shares one MLP encoder (2 -> 8 -> 4, ReLU) between one linear
head per task, and warm-starts that encoder from `init_checkpoint` through
`checkpoint_items = {"encoder": mlp}`. `ShapesTask.build_model` builds the same
encoder and head alone and exposes the encoder under the same name, so a
checkpoint of a single-task run warm-starts the multi-task model.

Registered experiments:

- `shapes`: the three tasks, joint trainer.
- `shapes_interleaving`: the three tasks, interleaving trainer with a
  proportional sampler over equal task weights (uniform sampling).
- `shapes_circle_single`: the circle task alone (a Model Garden
  `ExperimentConfig`).
- `shapes_warm_start`: circle + square, joint trainer; set
  `task.init_checkpoint` to the model_dir of a `shapes_circle_single` run to
  warm-start the shared encoder from it.
- `shapes_circle_alone`, `shapes_square_alone`, `shapes_inv_circle_alone`:
  each task of `shapes` trained alone with its trainer settings (the
  single-task baselines; see `multitask.experiments.single_task`).

Every experiment runs under a one-replica MirroredStrategy on the CPU
(`runtime.distribution_strategy="mirrored"`, `num_gpus=0`), so the distributed
code path is the one exercised.
"""
import dataclasses
import math
from typing import Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import task_factory
from official.modeling import hyperparams

from multitask.experiments import classification
from multitask.experiments import single_task
from multitask import base_model
from multitask import configs
from multitask import model_factory

SHAPES = ("circle", "square", "inv_circle")
SPLITS = ("train", "validation", "test")
# Fractions of the points in each split, in SPLITS order.
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# Half-sides of the sampling square that give ~50% positives (module docstring).
BALANCED_HALF_SIDES = {
    "circle": math.sqrt(math.pi / 2),
    "square": math.sqrt(2.0),
    "inv_circle": math.sqrt(math.pi / 2),
}
# The data seed of each task when its data config sets none.
DEFAULT_SEEDS = {"circle": 1, "square": 2, "inv_circle": 3}
NUM_CLASSES = 2
INPUT_DIM = 2


def check_shape(shape: str) -> None:
    """Raises a ValueError unless `shape` is one of `SHAPES`."""
    if shape not in SHAPES:
        raise ValueError(f"shape is {shape!r}; allowed: {', '.join(SHAPES)}.")


def check_split(split: str) -> None:
    """Raises a ValueError unless `split` is one of `SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split is {split!r}; allowed: {', '.join(SPLITS)}.")


def split_sizes(num_examples: int) -> Dict[str, int]:
    """Returns the number of points of each split of `num_examples` points.

    Train and validation get `floor(fraction * num_examples)`; test gets the
    rest, so the sizes always add up to `num_examples`.
    """
    train = int(SPLIT_FRACTIONS[0] * num_examples)
    validation = int(SPLIT_FRACTIONS[1] * num_examples)
    return {"train": train, "validation": validation, "test": num_examples - train - validation}


def shape_labels(shape: str, points: np.ndarray) -> np.ndarray:
    """Labels `points` by the geometric rule of `shape`.

    Args:
      shape: One of `SHAPES`.
      points: A float array `[n, 2]` of (x, y) coordinates.

    Returns:
      An int32 array `[n]` of 0/1 labels.

    Raises:
      ValueError: An unknown shape.
    """
    check_shape(shape)
    squared_radius = np.sum(np.square(points), axis=-1)
    if shape == "circle":
        positive = squared_radius < 1.0
    elif shape == "inv_circle":
        positive = squared_radius >= 1.0
    else:
        positive = np.all(np.abs(points) <= 1.0, axis=-1)
    return positive.astype(np.int32)


def shapes_arrays(
    shape: str,
    split: str,
    num_examples: int = 1000,
    seed: Optional[int] = None,
    half_side: Optional[float] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Returns one split of a task's points and labels, deterministically.

    All `num_examples` points are drawn with `seed`, permuted with the same
    generator and cut into train/validation/test by `SPLIT_FRACTIONS`; the
    same arguments with another split give the disjoint rest of the points.

    Args:
      shape: One of `SHAPES`.
      split: One of `SPLITS`.
      num_examples: Points of all splits together.
      seed: The data seed; None uses `DEFAULT_SEEDS[shape]`.
      half_side: The sampling square is [-half_side, half_side]^2; None uses
        `BALANCED_HALF_SIDES[shape]`.

    Returns:
      `(points, labels)`: float32 `[n, 2]` and int32 `[n]`.

    Raises:
      ValueError: An unknown shape or split, or a non-positive `num_examples`
        or `half_side`.
    """
    check_shape(shape)
    check_split(split)
    if num_examples <= 0:
        raise ValueError(f"num_examples is {num_examples}; it must be positive.")
    half_side = BALANCED_HALF_SIDES[shape] if half_side is None else float(half_side)
    if half_side <= 0:
        raise ValueError(f"half_side is {half_side}; it must be positive.")
    rng = np.random.default_rng(DEFAULT_SEEDS[shape] if seed is None else seed)
    points = rng.uniform(-half_side, half_side, size=(num_examples, INPUT_DIM)).astype(np.float32)
    points = points[rng.permutation(num_examples)]
    sizes = split_sizes(num_examples)
    start = sum(sizes[name] for name in SPLITS[: SPLITS.index(split)])
    points = points[start : start + sizes[split]]
    return points, shape_labels(shape, points)


@dataclasses.dataclass
class ShapesDataConfig(cfg.DataConfig):
    """One split of one shapes task's points.

    Attributes:
      dataset: Always "shapes".
      split: "train", "validation" or "test". The train split repeats and
        shuffles (when `is_training` is not False); the others are finite and
        keep their last partial batch.
      num_examples: Points of all splits together (80/10/10).
      half_side: Half-side of the sampling square; None picks the balanced one.
      seed: Data seed (points, split and shuffling); None uses the task's
        default seed. Train, validation and test must use the same seed to be
        disjoint.
    """

    dataset: str = "shapes"
    split: str = "train"
    num_examples: int = 1000
    half_side: Optional[float] = None
    global_batch_size: int = 32
    is_training: Optional[bool] = True
    drop_remainder: bool = True
    shuffle_buffer_size: int = 1000


@dataclasses.dataclass
class ShapesTaskConfig(cfg.TaskConfig):
    """One shapes task.

    Attributes:
      shape: The labelling rule: "circle", "square" or "inv_circle".
      hidden_sizes: Units of the encoder's ReLU layers, for `build_model`.
    """

    name: Optional[str] = "circle"
    shape: str = "circle"
    hidden_sizes: Tuple[int, ...] = (8, 4)
    train_data: ShapesDataConfig = dataclasses.field(default_factory=ShapesDataConfig)
    validation_data: ShapesDataConfig = dataclasses.field(
        default_factory=lambda: ShapesDataConfig(split="validation", is_training=False, drop_remainder=False)
    )


@dataclasses.dataclass
class ShapesModelConfig(hyperparams.Config):
    """The multi-task shapes model: one shared MLP, one linear head per task.

    Attributes:
      hidden_sizes: Units of the shared encoder's ReLU layers.
      task_names: One head per name; the names of the experiment's routines.
    """

    hidden_sizes: Tuple[int, ...] = (8, 4)
    task_names: Tuple[str, ...] = SHAPES


def build_encoder(hidden_sizes, name: str = "encoder") -> keras.Sequential:
    """Returns the built MLP encoder: 2 inputs, one ReLU Dense per hidden size."""
    layers = [keras.Input((INPUT_DIM,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden_sizes]
    return keras.Sequential(layers, name=name)


def build_head(name: str = "head") -> keras.layers.Dense:
    """A linear head with one logit per class."""
    return keras.layers.Dense(NUM_CLASSES, name=name)


@task_factory.register_task_cls(ShapesTaskConfig)
class ShapesTask(classification.SparseClassificationTask):
    """Binary classification of points by one of the `SHAPES` rules."""

    def __init__(self, params: ShapesTaskConfig, logging_dir: Optional[str] = None, name: Optional[str] = None):
        """Initializes the task.

        Raises:
          ValueError: `params.shape` is not one of `SHAPES`.
        """
        check_shape(params.shape)
        super().__init__(params, logging_dir=logging_dir, name=name)

    def build_model(self) -> base_model.EncoderHead:
        """Returns the task's own encoder and head, built."""
        return base_model.EncoderHead(build_encoder(self.task_config.hidden_sizes), build_head(), name=self.name)

    def build_inputs(self, params: ShapesDataConfig, input_context: Optional[tf.distribute.InputContext] = None):
        """Returns `(points [b, 2] float32, labels [b] int32)` batches of one split.

        Args:
          params: The split to read.
          input_context: Gives the per-replica batch size and this pipeline's shard.

        Raises:
          ValueError: An unknown split or dataset name.
        """
        if params.dataset != "shapes":
            raise ValueError(f"dataset is {params.dataset!r}; ShapesTask reads only 'shapes'.")
        check_split(params.split)
        seed = DEFAULT_SEEDS[self.task_config.shape] if params.seed is None else params.seed
        points, labels = shapes_arrays(
            self.task_config.shape, params.split, params.num_examples, seed, params.half_side
        )
        dataset = tf.data.Dataset.from_tensor_slices((points, labels))
        batch_size = params.global_batch_size
        if input_context:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
            if input_context.num_input_pipelines > 1:
                dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        training = params.split == "train" and params.is_training is not False
        if training:
            dataset = dataset.shuffle(max(params.shuffle_buffer_size, 1), seed=seed).repeat()
        dataset = dataset.batch(batch_size, drop_remainder=training and params.drop_remainder)
        # The data are small in-memory tensors: a fixed prefetch needs no tuning,
        # and without tf.data's autotuning thread an unfinished iterator (a
        # finished trainer's) is deleted at once instead of blocking until that
        # thread next wakes up, which can take up to a minute.
        options = tf.data.Options()
        options.autotune.enabled = False
        return dataset.prefetch(2).with_options(options)


@model_factory.register_model_cls(ShapesModelConfig)
class ShapesModel(base_model.EncoderHeadsModel):
    """One shared MLP encoder and a linear head per task."""

    def __init__(self, config: ShapesModelConfig, init_checkpoint: str = "", **kwargs):
        """Builds the shared encoder and the heads.

        Args:
          config: Hidden sizes and task names.
          init_checkpoint: A checkpoint holding an "encoder" (e.g. a single-task
            shapes run's model_dir) that `initialize()` restores.
          **kwargs: Passed to `EncoderHeadsModel`.
        """
        super().__init__(
            build_encoder(config.hidden_sizes),
            {name: build_head(f"{name}_head") for name in config.task_names},
            init_checkpoint=init_checkpoint,
            **kwargs,
        )


def shapes_task_config(shape: str, global_batch_size: int = 32) -> ShapesTaskConfig:
    """Returns the config of task `shape`, named after it, with its own seed."""
    check_shape(shape)
    seed = DEFAULT_SEEDS[shape]
    return ShapesTaskConfig(
        name=shape,
        shape=shape,
        train_data=ShapesDataConfig(split="train", seed=seed, global_batch_size=global_batch_size),
        validation_data=ShapesDataConfig(
            split="validation",
            seed=seed,
            global_batch_size=global_batch_size,
            is_training=False,
            drop_remainder=False,
        ),
    )


def _runtime() -> cfg.RuntimeConfig:
    return cfg.RuntimeConfig(distribution_strategy="mirrored", num_gpus=0)


def _trainer_settings(train_steps: int, steps_per_loop: int) -> dict:
    """Trainer fields shared by the shapes experiments (Adam, constant rate)."""
    return dict(
        optimizer_config=cfg.OptimizationConfig(
            {
                "optimizer": {"type": "adam"},
                "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.02}},
            }
        ),
        train_steps=train_steps,
        steps_per_loop=steps_per_loop,
        summary_interval=steps_per_loop,
        # Evaluation is cheap here; evaluating every loop draws the report's curves.
        validation_interval=steps_per_loop,
        checkpoint_interval=train_steps // 2,
        max_to_keep=2,
        validation_steps=-1,
    )


def _multi_task_experiment(task_shapes, trainer_type: str, train_steps: int) -> configs.MultiTaskExperimentConfig:
    """One routine per shape (named after it, weight 1) over a `ShapesModel`."""
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(
            model=ShapesModelConfig(task_names=tuple(task_shapes)),
            task_routines=tuple(
                configs.TaskRoutine(task_name=shape, task_config=shapes_task_config(shape), task_weight=1.0)
                for shape in task_shapes
            ),
        ),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type=trainer_type,
            task_sampler=configs.TaskSamplingConfig(type="proportional"),
            **_trainer_settings(train_steps, steps_per_loop=250),
        ),
        runtime=_runtime(),
    )


@exp_factory.register_config_factory("shapes")
def shapes() -> configs.MultiTaskExperimentConfig:
    """circle, square and inv_circle trained jointly over one shared MLP."""
    return _multi_task_experiment(SHAPES, "joint", train_steps=2000)


@exp_factory.register_config_factory("shapes_interleaving")
def shapes_interleaving() -> configs.MultiTaskExperimentConfig:
    """The three tasks, one sampled per step (proportional to equal weights)."""
    return _multi_task_experiment(SHAPES, "interleaving", train_steps=4000)


@exp_factory.register_config_factory("shapes_circle_single")
def shapes_circle_single() -> cfg.ExperimentConfig:
    """The circle task alone; its checkpoints warm-start `shapes_warm_start`."""
    return cfg.ExperimentConfig(
        task=shapes_task_config("circle"),
        trainer=cfg.TrainerConfig(**_trainer_settings(train_steps=1000, steps_per_loop=250)),
        runtime=_runtime(),
    )


@exp_factory.register_config_factory("shapes_warm_start")
def shapes_warm_start() -> configs.MultiTaskExperimentConfig:
    """circle + square, jointly; `task.init_checkpoint` warm-starts the encoder.

    Set `task.init_checkpoint` to a `shapes_circle_single` model_dir (or a
    checkpoint file in it); empty trains from scratch.
    """
    return _multi_task_experiment(("circle", "square"), "joint", train_steps=1000)


single_task.register_alone_experiments("shapes", shapes, SHAPES)
