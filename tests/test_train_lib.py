"""Tests for train_lib: every mode, checkpoints, summaries, resume, errors."""
import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions as cfg

import toy
from multitask import configs
from multitask import multitask
from multitask import train_lib


def _params(trainer_type="joint", train_steps=6, sampler="uniform"):
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(
            task_routines=(
                configs.TaskRoutine(task_config=toy.FooConfig()),
                configs.TaskRoutine(task_config=toy.BarConfig(), task_weight=2.0),
            )
        ),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type=trainer_type,
            task_sampler=configs.TaskSamplingConfig(type=sampler),
            train_steps=train_steps,
            steps_per_loop=3,
            summary_interval=3,
            checkpoint_interval=3,
            validation_interval=3,
            validation_steps=-1,
            optimizer_config={
                "optimizer": {"type": "sgd", "sgd": {"momentum": 0.5}},
                "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.02}},
            },
        ),
        runtime=cfg.RuntimeConfig(distribution_strategy="default"),
    )


def _run(params, model_dir, mode, strategy=None, run_post_eval=False):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        task = multitask.MultiTask.from_config(params.task)
        model = toy.ToyMultiTaskModel()
    result = train_lib.run_experiment(
        distribution_strategy=strategy, task=task, model=model, mode=mode,
        params=params, model_dir=str(model_dir), run_post_eval=run_post_eval,
    )
    return result if run_post_eval else (result, None)


def _events(directory):
    return glob.glob(os.path.join(directory, "events.out.tfevents.*"))


@pytest.mark.parametrize("trainer_type", ["joint", "interleaving"])
def test_train_and_eval_writes_checkpoints_and_summaries(tmp_path, trainer_type):
    model, logs = _run(_params(trainer_type), tmp_path, "train_and_eval", run_post_eval=True)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-6")
    assert _events(tmp_path / "train") and _events(tmp_path / "validation")
    assert set(logs) == {"foo", "bar"}
    assert set(logs["foo"]) == {"validation_loss", "mae"}
    reader = tf.train.load_checkpoint(str(tmp_path))
    assert reader.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE") == 6
    counters = [reader.get_tensor(f"task_step_counters/{n}/.ATTRIBUTES/VARIABLE_VALUE") for n in ("foo", "bar")]
    assert sum(counters) == 6 if trainer_type == "interleaving" else counters == [6, 6]


def _tags(directory):
    """`{(run, tag)}` of the event files under `directory` (orbit nests per task)."""
    tags = set()
    for path in glob.glob(os.path.join(directory, "**", "events.out.tfevents.*"), recursive=True):
        run = os.path.relpath(os.path.dirname(path), directory)
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update((run, value.tag) for value in event.summary.value)
    return tags


def test_summaries_hold_per_task_losses_and_step_counts(tmp_path):
    _run(_params(), tmp_path, "train_and_eval")
    assert {("foo", "training_loss"), ("bar", "task_steps"), ("foo", "mae"), (".", "total_loss"),
            (".", "learning_rate")} <= _tags(tmp_path / "train")
    assert {("foo", "validation_loss"), ("bar", "mae")} <= _tags(tmp_path / "validation")


def test_eval_mode_reads_the_trained_checkpoint(tmp_path):
    trained, _ = _run(_params(), tmp_path, "train")
    evaluated, logs = _run(_params(), tmp_path, "eval", run_post_eval=True)
    np.testing.assert_array_equal(trained.shared.kernel.numpy(), evaluated.shared.kernel.numpy())
    assert set(logs) == {"foo", "bar"}
    assert _events(tmp_path / "validation")


def test_continuous_eval_stops_at_train_steps(tmp_path):
    _run(_params(), tmp_path, "train")
    params = _params()
    params.trainer.continuous_eval_timeout = 1
    _, logs = _run(params, tmp_path, "continuous_eval", run_post_eval=True)
    assert set(logs) == {"foo", "bar"}


@pytest.mark.parametrize("trainer_type", ["joint", "interleaving"])
def test_resume_equals_uninterrupted_run(tmp_path, trainer_type):
    """Train 6 steps, restart, continue to 12: same as 12 steps in one go.

    With 64 examples and batches of 8, 6 steps end mid-epoch, so the data
    position must be restored, not just the variables.
    """
    whole, _ = _run(_params(trainer_type, train_steps=12), tmp_path / "whole", "train")
    _run(_params(trainer_type, train_steps=6), tmp_path / "split", "train")
    resumed, _ = _run(_params(trainer_type, train_steps=12), tmp_path / "split", "train")
    for a, b in zip(whole.trainable_variables, resumed.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_runs_under_mirrored_strategy(tmp_path, two_cpu_strategy):
    _, logs = _run(_params("interleaving"), tmp_path, "train_and_eval", two_cpu_strategy, True)
    assert set(logs) == {"foo", "bar"}


def test_single_task_trains_alone(tmp_path):
    task = toy.ToyTask(toy.FooConfig())
    params = cfg.ExperimentConfig(task=toy.FooConfig(), trainer=_params().trainer.as_dict())
    params.trainer.optimizer_config = _params().trainer.optimizer_config
    model, logs = train_lib.run_experiment(
        distribution_strategy=tf.distribute.get_strategy(), task=task, model=task.build_model(),
        mode="train_and_eval", params=params, model_dir=str(tmp_path), run_post_eval=True,
    )
    assert set(logs) == {"foo"}
    reader = tf.train.load_checkpoint(str(tmp_path))
    assert reader.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE") == 6


def test_bad_trainer_type_and_sampler_and_mode(tmp_path):
    with pytest.raises(ValueError, match="trainer.trainer_type is 'alternating'; allowed: joint, interleaving"):
        _run(_params("alternating"), tmp_path, "train")
    with pytest.raises(ValueError, match="trainer.task_sampler.type is 'random'"):
        _run(_params("interleaving", sampler="random"), tmp_path, "train")
    with pytest.raises(ValueError, match="mode is 'fit'; allowed"):
        _run(_params(), tmp_path, "fit")
    assert not tf.io.gfile.glob(str(tmp_path / "ckpt-*"))


def test_train_one_task_and_evaluate_several(tmp_path):
    params = configs.MultiEvalExperimentConfig(
        task=toy.FooConfig(),
        trainer=_params().trainer.as_dict(),
        eval_tasks=(
            configs.TaskRoutine(task_config=toy.FooConfig()),
            configs.TaskRoutine(task_name="bar_data", task_config=toy.BarConfig(), eval_steps=2),
        ),
    )
    eval_tasks = [toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig(), name="bar_data")]
    model, logs = train_lib.run_experiment_with_multitask_eval(
        distribution_strategy=tf.distribute.get_strategy(), train_task=toy.ToyTask(toy.FooConfig()),
        eval_tasks=eval_tasks, mode="train_and_eval", params=params, model_dir=str(tmp_path),
        run_post_eval=True,
    )
    assert set(logs) == {"foo", "bar_data"}
    # The single model serves both evaluations: bar_data's MAE is that model's on bar's data.
    x, y = toy.toy_arrays(4)
    np.testing.assert_allclose(logs["bar_data"]["mae"], np.mean(np.abs(model(x[:16]).numpy() - y[:16])), rtol=1e-5)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-6")


def test_gin_binds_trainer_arguments(tmp_path):
    import gin

    with gin.unlock_config():
        gin.parse_config("MultiTaskInterleavingTrainer.sampling_seed = 7")
    try:
        strategy = tf.distribute.get_strategy()
        with strategy.scope():
            trainer = train_lib.get_trainer(
                strategy, _params("interleaving"), multitask.MultiTask.from_config(_params().task),
                toy.ToyMultiTaskModel(),
            )
        assert trainer.sampling_seed == 7
    finally:
        gin.clear_config()
