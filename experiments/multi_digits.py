"""The `multi_digits` experiment: a MultiMNIST-style benchmark on 8x8 digits.

Built from scikit-learn's bundled digits (`sklearn.datasets.load_digits`:
1797 grey 8x8 images with values 0..16, shipped with the package, so nothing
is downloaded). Each example puts two digit images side by side on one canvas
of 8 x (16 - overlap) pixels: the left digit fills columns [0, 8), the right
one columns [8 - overlap, 16 - overlap), and where they overlap the canvas
takes the pixel-wise maximum. Pixels are scaled to [0, 1]. Task `left` is the
class of the left digit, task `right` the class of the right one; both read the
same input (the multi-label setting).

The digit images come from a source named by the data config's `dataset`:
"multi_digits" is scikit-learn's digits; `register_source` adds others of
any square size s (the canvas is then s x (2s - overlap)), as
`multitask.experiments.multi_mnist` does for real MNIST digits. Everything below works
the same for every source.

The source images are split first, by `seed`, into disjoint train /
validation / test pools (70% / 15% / 15%), and pairs are composed only within
one pool (`num_pairs` per split, drawn with a generator seeded by `seed` and the
split), so no test-split source digit is ever seen in training.

Data access comes in two forms:

- `shared_inputs(data_config, input_context)`: the shared dataset of
  `(canvas, {"left": labels, "right": labels})` batches, registered with
  `multitask.input_factory`; the experiment's `task.shared_train_data` makes
  the joint trainer read it (each canvas read once, encoded once for both
  tasks).
- `MultiDigitsTask.build_inputs`: the same dataset mapped to the task's own
  `(canvas, labels)`, so each task also trains and evaluates alone, and the
  tasks can train with one dataset each (unset `task.shared_train_data`).

The model, `MultiDigitsModel`, is an `EncoderHeadsModel`: a small CNN encoder
(two 3x3 Conv2D + 2x2 max-pooling blocks, then a ReLU Dense) shared by one
10-class softmax head per task; `checkpoint_items = {"encoder": cnn}` warm-starts the encoder from
`init_checkpoint`. The encoder flattens its feature map (the position of a
stroke says which digit it belongs to), so its input shape is fixed:
`MultiDigitsModelConfig.overlap` and `digit_size` must match the data's.
`configured_model_config` describes the same network with config blocks
(`SharedEncoderModelConfig`), so that any registered architecture can replace
hard sharing: the `multi_digits_configured` experiment uses it.

Each task also trains alone with the same model, data and trainer settings:
`multi_digits_left_alone` and `multi_digits_right_alone` (see
`multitask.experiments.single_task`).
"""
import dataclasses
import functools
from typing import Callable, Dict, NamedTuple, Optional, Tuple

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
from multitask import input_factory
from multitask import model_factory
from multitask.modeling import shared_encoder_model

SIDES = ("left", "right")
SPLITS = ("train", "validation", "test")
# Fractions of the source images in each split's pool, in SPLITS order.
POOL_FRACTIONS = (0.7, 0.15, 0.15)
# The size of scikit-learn's digits, the default source.
DIGIT_SIZE = 8
NUM_CLASSES = 10
DEFAULT_DATASET = "multi_digits"
DEFAULT_OVERLAP = 4
DEFAULT_SEED = 0


class DigitSource(NamedTuple):
    """Where a dataset's digit images come from.

    Attributes:
      digit_size: s: every image is s x s.
      load: Returns float32 images `[n, s, s]` in [0, 1] and int32 labels `[n]`
        in 0..9.
    """

    digit_size: int
    load: Callable[[], Tuple[np.ndarray, np.ndarray]]


_SOURCES: Dict[str, DigitSource] = {}


def register_source(dataset: str, digit_size: int, load: Callable[[], Tuple[np.ndarray, np.ndarray]]) -> None:
    """Makes `dataset` a valid data config `dataset`, composed from `load()`'s images.

    Args:
      dataset: The name, e.g. "multi_mnist".
      digit_size: The side of the (square) images `load` returns.
      load: Returns `(float32 images [n, digit_size, digit_size] in [0, 1],
        int32 labels [n])`; called at most once per process, when the data
        are first needed.

    Raises:
      KeyError: `dataset` is already registered.
    """
    if dataset in _SOURCES:
        raise KeyError(f"digit source {dataset!r} is already registered.")
    _SOURCES[dataset] = DigitSource(int(digit_size), load)


def check_dataset(dataset: str) -> None:
    """Raises a ValueError unless `dataset` names a registered digit source."""
    if dataset not in _SOURCES:
        raise ValueError(f"dataset is {dataset!r}; this reader reads: {', '.join(sorted(_SOURCES))}.")


def digit_size(dataset: str = DEFAULT_DATASET) -> int:
    """The side of the digit images of `dataset` (without loading them)."""
    check_dataset(dataset)
    return _SOURCES[dataset].digit_size


def check_split(split: str) -> None:
    """Raises a ValueError unless `split` is one of `SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split is {split!r}; allowed: {', '.join(SPLITS)}.")


def check_side(side: str) -> None:
    """Raises a ValueError unless `side` is one of `SIDES`."""
    if side not in SIDES:
        raise ValueError(f"side is {side!r}; allowed: {', '.join(SIDES)}.")


def canvas_width(overlap: int, size: int = DIGIT_SIZE) -> int:
    """Returns the width of a canvas whose two `size`-wide digits overlap by `overlap` pixels.

    Raises:
      ValueError: `overlap` is not an integer in [0, size).
    """
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < size:
        raise ValueError(
            f"overlap is {overlap!r}; allowed: an integer number of pixels from 0 to {size - 1}."
        )
    return 2 * size - int(overlap)


def _sklearn_digits() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, scaled from 0..16 to [0, 1]."""
    from sklearn import datasets  # pylint: disable=g-import-not-at-top

    digits = datasets.load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int32)


register_source(DEFAULT_DATASET, DIGIT_SIZE, _sklearn_digits)


@functools.lru_cache(maxsize=None)
def source_digits(dataset: str = DEFAULT_DATASET) -> Tuple[np.ndarray, np.ndarray]:
    """Returns the source images of `dataset`: float32 `[n, s, s]` in [0, 1], int32 labels `[n]`.

    The arrays are shared between calls; do not modify them.

    Raises:
      ValueError: An unknown dataset.
    """
    check_dataset(dataset)
    images, labels = _SOURCES[dataset].load()
    images, labels = np.asarray(images, np.float32), np.asarray(labels, np.int32)
    size = _SOURCES[dataset].digit_size
    if images.shape[1:] != (size, size) or labels.shape != images.shape[:1]:
        raise ValueError(
            f"digit source {dataset!r} gave images {images.shape} and labels {labels.shape}; "
            f"expected [n, {size}, {size}] and [n]."
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def source_pools(seed: int = DEFAULT_SEED, num_images: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Splits the source image indices into disjoint pools, one per split.

    Args:
      seed: Seeds the permutation of the source images.
      num_images: The number of source images; all of `source_digits()` by default.

    Returns:
      `{split: sorted int array of source indices}`; the pools are disjoint and
      cover every image.
    """
    if num_images is None:
        num_images = len(source_digits()[1])
    order = np.random.default_rng(seed).permutation(num_images)
    train = int(POOL_FRACTIONS[0] * num_images)
    validation = int(POOL_FRACTIONS[1] * num_images)
    return {
        "train": np.sort(order[:train]),
        "validation": np.sort(order[train : train + validation]),
        "test": np.sort(order[train + validation :]),
    }


def compose(left_images: np.ndarray, right_images: np.ndarray, overlap: int) -> np.ndarray:
    """Places digit pairs side by side, overlapping by `overlap` pixels.

    Args:
      left_images: `[n, s, s]` images for the left position.
      right_images: `[n, s, s]` images for the right position.
      overlap: Columns shared by the two digits, 0..s-1.

    Returns:
      float32 canvases `[n, s, 2s - overlap]`, the pixel-wise maximum of the
      two placed digits.
    """
    size = left_images.shape[-1]
    width = canvas_width(overlap, size)
    canvas = np.zeros((len(left_images), size, width), np.float32)
    canvas[:, :, :size] = left_images
    start = size - int(overlap)
    canvas[:, :, start:] = np.maximum(canvas[:, :, start:], right_images)
    return canvas


class MultiDigitsArrays(NamedTuple):
    """One split of the benchmark, as numpy arrays.

    Attributes:
      features: float32 canvases `[n, s, 2s - overlap, 1]`.
      left: int32 classes of the left digits `[n]`.
      right: int32 classes of the right digits `[n]`.
      left_source: Indices into the source images of the left digits.
      right_source: Indices into the source images of the right digits.
    """

    features: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_source: np.ndarray
    right_source: np.ndarray


def compose_pairs(
    images: np.ndarray, labels: np.ndarray, split: str, num_pairs: int, overlap: int, seed: int = DEFAULT_SEED
) -> MultiDigitsArrays:
    """Composes `num_pairs` pairs of one split from given source images, deterministically.

    The images are first split into disjoint pools by `source_pools(seed)`;
    both digits of a pair come from `split`'s pool.

    Args:
      images: The source images `[n, s, s]`.
      labels: Their classes `[n]`.
      split: One of `SPLITS`.
      num_pairs: The number of examples.
      overlap: Columns shared by the two digits, 0..s-1.
      seed: Seeds the source pools and, with the split, the pair draws.

    Returns:
      The `MultiDigitsArrays` of the split.

    Raises:
      ValueError: An unknown split, a bad overlap or a non-positive `num_pairs`.
    """
    check_split(split)
    canvas_width(overlap, images.shape[-1])
    if num_pairs <= 0:
        raise ValueError(f"num_pairs is {num_pairs}; it must be positive.")
    pool = source_pools(seed, len(labels))[split]
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    left = rng.choice(pool, size=num_pairs)
    right = rng.choice(pool, size=num_pairs)
    features = compose(images[left], images[right], overlap)[..., np.newaxis]
    return MultiDigitsArrays(features, labels[left], labels[right], left, right)


def multi_digits_arrays(
    split: str,
    num_pairs: int,
    overlap: int = DEFAULT_OVERLAP,
    seed: int = DEFAULT_SEED,
    dataset: str = DEFAULT_DATASET,
) -> MultiDigitsArrays:
    """Composes `num_pairs` pairs of one split of `dataset`'s digits (see `compose_pairs`).

    Raises:
      ValueError: An unknown dataset or split, a bad overlap or a non-positive
        `num_pairs`.
    """
    images, labels = source_digits(dataset)
    return compose_pairs(images, labels, split, num_pairs, overlap, seed)


@dataclasses.dataclass
class MultiDigitsDataConfig(cfg.DataConfig):
    """One split of the multi_digits benchmark.

    Attributes:
      dataset: The digit source (see `register_source`): "multi_digits"
        (scikit-learn's 8x8 digits) or another registered one.
      split: "train", "validation" or "test". The train split repeats and
        shuffles (when `is_training` is not False); the others are finite and
        keep their last partial batch.
      num_pairs: Examples composed for this split.
      overlap: Columns shared by the two digits (0..s-1 for s x s digits);
        the canvas is s x (2s - overlap).
      seed: Seeds the source pools (use one seed for all splits so the pools
        are disjoint), the pair draws and the shuffling.
    """

    dataset: str = DEFAULT_DATASET
    split: str = "train"
    num_pairs: int = 20000
    overlap: int = DEFAULT_OVERLAP
    seed: Optional[int] = DEFAULT_SEED
    global_batch_size: int = 64
    is_training: Optional[bool] = True
    drop_remainder: bool = True
    shuffle_buffer_size: int = 20000


@input_factory.register_shared_inputs(MultiDigitsDataConfig)
def shared_inputs(
    data_config: MultiDigitsDataConfig, input_context: Optional[tf.distribute.InputContext] = None
) -> tf.data.Dataset:
    """Returns the shared dataset of `(canvas, {"left": labels, "right": labels})` batches.

    Args:
      data_config: The split to read and how to batch it.
      input_context: Gives the per-replica batch size and this pipeline's shard.

    Returns:
      Batches of float32 canvases `[b, s, 2s - overlap, 1]` with int32 labels
      `[b]` under "left" and "right".

    Raises:
      ValueError: An unknown dataset or split, or a bad overlap.
    """
    check_dataset(data_config.dataset)
    check_split(data_config.split)
    seed = DEFAULT_SEED if data_config.seed is None else data_config.seed
    arrays = multi_digits_arrays(
        data_config.split, data_config.num_pairs, data_config.overlap, seed, data_config.dataset
    )
    dataset = tf.data.Dataset.from_tensor_slices(
        (arrays.features, {"left": arrays.left, "right": arrays.right})
    )
    batch_size = data_config.global_batch_size
    if input_context:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        if input_context.num_input_pipelines > 1:
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    training = data_config.split == "train" and data_config.is_training is not False
    if training:
        dataset = dataset.shuffle(max(data_config.shuffle_buffer_size, 1), seed=seed).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=training and data_config.drop_remainder)
    # The data are small in-memory tensors: a fixed prefetch needs no tuning,
    # and without tf.data's autotuning thread an unfinished iterator (a
    # finished trainer's) is deleted at once instead of blocking until that
    # thread next wakes up, which can take up to a minute.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


@dataclasses.dataclass
class MultiDigitsTaskConfig(cfg.TaskConfig):
    """One side of the multi_digits benchmark.

    Attributes:
      side: Which digit's class to predict: "left" or "right".
      filters: Filters of the encoder's two Conv2D layers, for `build_model`.
      dense_units: Units of the encoder's Dense layer, for `build_model`.
    """

    name: Optional[str] = "left"
    side: str = "left"
    filters: Tuple[int, ...] = (16, 32)
    dense_units: int = 64
    train_data: MultiDigitsDataConfig = dataclasses.field(default_factory=MultiDigitsDataConfig)
    validation_data: MultiDigitsDataConfig = dataclasses.field(
        default_factory=lambda: MultiDigitsDataConfig(
            split="validation", num_pairs=1000, is_training=False, drop_remainder=False
        )
    )


@dataclasses.dataclass
class MultiDigitsModelConfig(hyperparams.Config):
    """The multi-task model: one shared CNN, one 10-class head per task.

    Attributes:
      overlap: The data's overlap; fixes the encoder's input width.
      digit_size: The side of the data's digits (`digit_size(dataset)`).
      filters: Filters of the encoder's two Conv2D layers.
      dense_units: Units of the encoder's Dense layer.
      task_names: One head per name; the names of the experiment's routines.
    """

    overlap: int = DEFAULT_OVERLAP
    digit_size: int = DIGIT_SIZE
    filters: Tuple[int, ...] = (16, 32)
    dense_units: int = 64
    task_names: Tuple[str, ...] = SIDES


@keras.saving.register_keras_serializable(package="multi_digits")
class DigitsEncoder(keras.Model):
    """The CNN encoder of `[b, s, 2s - overlap, 1]` canvases of s x s digits.

    One 3x3 ReLU Conv2D and one 2x2 max-pooling per entry of `filters`, then
    Flatten and a ReLU Dense of `dense_units`. Built on creation; serializable,
    so an exported model (`multitask.export`) reloads with `keras.saving.load_model`.
    """

    def __init__(self, overlap: int, filters=(16, 32), dense_units: int = 64, digit_size: int = DIGIT_SIZE,
                 **kwargs):
        super().__init__(**kwargs)
        self._config = {"overlap": int(overlap), "filters": [int(f) for f in filters],
                        "dense_units": int(dense_units), "digit_size": int(digit_size)}
        shape = (digit_size, canvas_width(overlap, digit_size), 1)
        layers = [keras.Input(shape)]
        for count in filters:
            layers.append(keras.layers.Conv2D(count, 3, padding="same", activation="relu"))
            layers.append(keras.layers.MaxPooling2D(2, padding="same"))
        layers += [keras.layers.Flatten(), keras.layers.Dense(dense_units, activation="relu")]
        self.cnn = keras.Sequential(layers)
        self.output_units = dense_units
        self(np.zeros((1,) + shape, np.float32))

    def call(self, inputs, training=None):
        # oneDNN's CPU Conv2D (TensorFlow 2.20) returns a wrongly shaped result
        # for an empty batch, which one replica gets at the end of an evaluation
        # split that does not divide evenly. Such a batch runs as one zero
        # example, whose output is then sliced away.
        batch_size = tf.shape(inputs)[0]
        padding = tf.cast(tf.equal(batch_size, 0), tf.int32)
        inputs = tf.pad(inputs, [[0, padding], [0, 0], [0, 0], [0, 0]])
        return self.cnn(inputs, training=training)[:batch_size]

    def get_config(self):
        return {**super().get_config(), **self._config}


def build_head(encoder: DigitsEncoder, name: str = "head") -> keras.layers.Dense:
    """A built linear head with one logit per class on the encoder's output."""
    head = keras.layers.Dense(NUM_CLASSES, name=name)
    head.build((None, encoder.output_units))
    return head


@task_factory.register_task_cls(MultiDigitsTaskConfig)
class MultiDigitsTask(classification.SparseClassificationTask):
    """10-class classification of the left or the right digit of a canvas."""

    def __init__(
        self, params: MultiDigitsTaskConfig, logging_dir: Optional[str] = None, name: Optional[str] = None
    ):
        """Initializes the task.

        Raises:
          ValueError: `params.side` is not one of `SIDES`.
        """
        check_side(params.side)
        super().__init__(params, logging_dir=logging_dir, name=name)

    def build_model(self) -> base_model.EncoderHead:
        """Returns the task's own encoder (sized by train_data's dataset and overlap) and head, built."""
        config = self.task_config
        encoder = DigitsEncoder(config.train_data.overlap, config.filters, config.dense_units,
                                digit_size(config.train_data.dataset), name="encoder")
        return base_model.EncoderHead(encoder, build_head(encoder), name=self.name)

    def build_inputs(
        self, params: MultiDigitsDataConfig, input_context: Optional[tf.distribute.InputContext] = None
    ) -> tf.data.Dataset:
        """Returns `(canvas, labels of this task's side)` batches (see `shared_inputs`)."""
        side = self.task_config.side
        return shared_inputs(params, input_context).map(lambda features, labels: (features, labels[side]))


@model_factory.register_model_cls(MultiDigitsModelConfig)
class MultiDigitsModel(base_model.EncoderHeadsModel):
    """One shared CNN encoder and a 10-class head per task."""

    def __init__(self, config: MultiDigitsModelConfig, init_checkpoint: str = "", **kwargs):
        """Builds the shared encoder and the heads.

        Args:
          config: Encoder sizes, overlap, digit size and task names.
          init_checkpoint: A checkpoint holding an "encoder" that
            `initialize()` restores.
          **kwargs: Passed to `EncoderHeadsModel`.
        """
        encoder = DigitsEncoder(config.overlap, config.filters, config.dense_units, config.digit_size,
                                name="encoder")
        super().__init__(
            encoder,
            {name: build_head(encoder, f"{name}_head") for name in config.task_names},
            init_checkpoint=init_checkpoint,
            **kwargs,
        )


def multi_digits_task_config(
    side: str, overlap: int = DEFAULT_OVERLAP, dataset: str = DEFAULT_DATASET
) -> MultiDigitsTaskConfig:
    """Returns the config of task `side` on `dataset`'s digits, named after it."""
    check_side(side)
    return MultiDigitsTaskConfig(
        name=side,
        side=side,
        train_data=MultiDigitsDataConfig(dataset=dataset, split="train", overlap=overlap),
        validation_data=MultiDigitsDataConfig(
            dataset=dataset, split="validation", overlap=overlap, num_pairs=1000, is_training=False,
            drop_remainder=False,
        ),
    )


def configured_model_config(
    overlap: int = DEFAULT_OVERLAP,
    dataset: str = DEFAULT_DATASET,
    filters: Tuple[int, ...] = (16, 32),
    dense_units: int = 64,
    task_names: Tuple[str, ...] = SIDES,
) -> shared_encoder_model.SharedEncoderModelConfig:
    """`MultiDigitsModel`'s network as config blocks: a `cnn` encoder, hard sharing, 10-class heads.

    Its `architecture` can be overridden with any registered architecture.
    """
    size = digit_size(dataset)
    return shared_encoder_model.SharedEncoderModelConfig(
        input_shape=(size, canvas_width(overlap, size), 1),
        encoder=shared_encoder_model.block("cnn", filters=list(filters), dense_units=dense_units),
        heads={name: {"type": "classification", "num_classes": NUM_CLASSES} for name in task_names},
    )


def experiment_config(
    dataset: str = DEFAULT_DATASET,
    overlap: int = DEFAULT_OVERLAP,
    train_steps: int = 3000,
    configured: bool = False,
) -> configs.MultiTaskExperimentConfig:
    """left and right of `dataset`'s digit pairs trained jointly over one shared CNN.

    Args:
      dataset: The digit source.
      overlap: Columns shared by the two digits.
      train_steps: Joint steps (batch 64, Adam 0.002).
      configured: Build the model from config blocks (`configured_model_config`)
        instead of `MultiDigitsModelConfig`.
    """
    if configured:
        model = configured_model_config(overlap, dataset)
    else:
        model = MultiDigitsModelConfig(overlap=overlap, digit_size=digit_size(dataset))
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(
            model=model,
            task_routines=tuple(
                configs.TaskRoutine(task_name=side, task_config=multi_digits_task_config(side, overlap, dataset))
                for side in SIDES
            ),
            # Both tasks read each canvas once, through one pass of the encoder.
            shared_train_data=MultiDigitsDataConfig(dataset=dataset, split="train", overlap=overlap),
        ),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type="joint",
            optimizer_config=cfg.OptimizationConfig(
                {
                    "optimizer": {"type": "adam"},
                    "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.002}},
                }
            ),
            train_steps=train_steps,
            steps_per_loop=250,
            summary_interval=250,
            validation_interval=500,
            checkpoint_interval=1000,
            max_to_keep=2,
            validation_steps=-1,
        ),
        runtime=cfg.RuntimeConfig(distribution_strategy="mirrored", num_gpus=0),
    )


@exp_factory.register_config_factory("multi_digits")
def multi_digits() -> configs.MultiTaskExperimentConfig:
    """left and right trained jointly over one shared CNN."""
    return experiment_config()


@exp_factory.register_config_factory("multi_digits_configured")
def multi_digits_configured() -> configs.MultiTaskExperimentConfig:
    """`multi_digits` over a config-built model: `task.model.architecture.type` picks the architecture."""
    return experiment_config(configured=True)


single_task.register_alone_experiments("multi_digits", multi_digits, SIDES)
