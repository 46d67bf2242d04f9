"""Tests of the penguins experiment: its data, partial sex labels, and a tiny run."""
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from official.core import exp_factory

import multitask.experiments  # noqa: F401  (registers the experiments)
from multitask.experiments import penguins
from multitask import model_factory
from multitask import multitask as multitask_lib
from multitask import train_lib
from multitask.modeling import heads


def test_splits_are_disjoint_complete_and_deterministic():
    sizes = {split: len(penguins.penguins_arrays(split)[0]) for split in penguins.SPLITS}
    assert sizes == {"train": 239, "validation": 51, "test": 52}
    rows = penguins.split_indices(342)
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(342))
    np.testing.assert_array_equal(penguins.penguins_arrays("test")[0], penguins.penguins_arrays("test")[0])
    assert not np.array_equal(penguins.penguins_arrays("test", seed=1)[0], penguins.penguins_arrays("test")[0])


def test_features_and_labels():
    train_features, train_labels = penguins.penguins_arrays("train")
    np.testing.assert_allclose(train_features[:, :3].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_features[:, :3].std(axis=0, ddof=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(train_features[:, 3:].sum(axis=1), 1.0)  # one island each
    assert train_labels["body_mass"].mean() == pytest.approx(0.0, abs=1e-5)
    mean, std = penguins.body_mass_scale()
    assert 4000 < mean < 4400 and 700 < std < 900
    unknown_sex = 0
    for split in penguins.SPLITS:
        _, labels = penguins.penguins_arrays(split)
        assert set(np.unique(labels["species"])) <= {0, 1, 2}
        assert set(np.unique(labels["sex"])) <= {-1, 0, 1}
        assert not np.isnan(labels["body_mass"]).any()
        unknown_sex += int((labels["sex"] == -1).sum())
    assert unknown_sex == 9  # the 11 of the table, less the 2 penguins without measurements


def test_each_task_reads_its_labels_from_the_shared_dataset():
    params = exp_factory.get_exp_config("penguins")
    multi_task = multitask_lib.MultiTask.from_config(params.task)
    _, labels = penguins.penguins_arrays("validation")
    for name, task in multi_task.tasks.items():
        _, batch = next(iter(task.build_inputs(task.task_config.validation_data)))
        np.testing.assert_array_equal(batch, labels[name][:32])
    model = model_factory.build_model(params.task)
    assert isinstance(model.heads["sex"].head, heads.BinaryHead)
    assert isinstance(model.heads["body_mass"].head, heads.RegressionHead)
    with pytest.raises(ValueError, match="allowed: train, validation, test"):
        penguins.penguins_arrays("dev")


def test_penguins_experiment_trains_a_few_steps(tmp_path):
    params = exp_factory.get_exp_config("penguins")
    params.trainer.override(
        dict(train_steps=4, steps_per_loop=2, summary_interval=2, checkpoint_interval=4, validation_interval=4),
        is_strict=True,
    )
    params.validate()
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        task = multitask_lib.MultiTask.from_config(params.task)
        model = model_factory.build_model(params.task)
    _, logs = train_lib.run_experiment(
        distribution_strategy=strategy, task=task, model=model, mode="train_and_eval",
        params=params, model_dir=str(tmp_path), run_post_eval=True,
    )
    assert set(logs["species"]) == {"validation_loss", "accuracy"}
    assert set(logs["sex"]) == {"validation_loss", "auc", "accuracy"}
    assert set(logs["body_mass"]) == {"validation_loss", "mae", "rmse"}
    assert all(np.isfinite(value) for task_logs in logs.values() for value in task_logs.values())
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")


def test_shipped_yaml_spells_out_the_defaults():
    path = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "penguins.yaml")
    with open(path, encoding="utf-8") as stream:
        override = yaml.safe_load(stream)
    params = exp_factory.get_exp_config("penguins")
    registered = params.as_dict()
    params.override(override, is_strict=True)
    params.validate()
    assert params.as_dict() == registered
    params.override({"task": {"model": {"encoder": {"hidden_sizes": [8]}}}}, is_strict=True)
    (encoder,) = model_factory.build_model(params.task).encoders
    assert [variable.shape for variable in encoder.trainable_variables][:2] == [(penguins.NUM_FEATURES, 8), (8,)]
