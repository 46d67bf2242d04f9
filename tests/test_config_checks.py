"""Tests for the launcher's checks of a resolved config: one line naming field, value and allowed; no file written."""
import os

import pytest
import tensorflow as tf

from multitask import config_checks
from multitask import multitask
from multitask import train
from multitask.experiments import shapes

TINY = "trainer.train_steps=2,trainer.steps_per_loop=1,trainer.validation_interval=2,trainer.checkpoint_interval=1"
METRICS = ("circle.validation_loss, circle.accuracy, square.validation_loss, square.accuracy, "
           "inv_circle.validation_loss, inv_circle.accuracy")


def _refused(tmp_path, override, **flags):
    """Runs the launcher in-process; returns its one-line UsageError after checking nothing was written."""
    model_dir = tmp_path / "run"
    with pytest.raises(train.UsageError) as error:
        train.run(train.launcher_flags(model_dir=str(model_dir), params_override=f"{TINY},{override}", **flags))
    assert "\n" not in str(error.value)
    assert not model_dir.exists()
    return str(error.value)


@pytest.mark.parametrize("override, message", [
    ("trainer.best_checkpoint_eval_metric=squar.accuracy",
     f"trainer.best_checkpoint_eval_metric is 'squar.accuracy'; allowed: {METRICS}."),
    ("trainer.best_checkpoint_eval_metric=circle|acc",
     f"trainer.best_checkpoint_eval_metric is 'circle|acc'; allowed: {METRICS}."),
    ("trainer.best_checkpoint_eval_metric=aggregate.mean",
     f"trainer.best_checkpoint_eval_metric is 'aggregate.mean'; allowed: {METRICS} "
     "(aggregate.<method> needs trainer.model_selection.method)."),
    ("trainer.model_selection.method=mean,trainer.model_selection.metrics=[circle.accuracy,squar.accuracy]",
     f"trainer.model_selection.metrics[1] is 'squar.accuracy'; allowed: {METRICS}."),
    ("task.tasks.square.early_stopping.metric=acc",
     "task.tasks.square.early_stopping.metric is 'acc'; allowed: validation_loss, accuracy."),
])
def test_metric_names_are_checked_against_the_evaluation(tmp_path, override, message):
    assert _refused(tmp_path, override) == message


@pytest.mark.parametrize("best", ["inv_circle|validation_loss", "aggregate.delta_m"])
def test_metric_names_the_evaluation_reports_pass(best):
    params = train.parse_params(train.launcher_flags(params_override=(
        f"trainer.best_checkpoint_eval_metric={best},trainer.model_selection.method=delta_m,"
        "trainer.model_selection.metrics=[circle.accuracy,square.accuracy],trainer.model_selection.baselines=[0.9,0.9],"
        "task.tasks.circle.early_stopping.metric=validation_loss")))
    config_checks.check_metric_names(params, multitask.MultiTask.from_config(params.task))


def test_a_task_with_its_own_reduced_logs_takes_any_metric_of_its_own():
    class Reducing(shapes.ShapesTask):
        def reduce_aggregated_logs(self, aggregated_logs, global_step=None):
            return {"f1": 0.0}

    params = train.parse_params(train.launcher_flags(params_override="trainer.best_checkpoint_eval_metric=circle.f1"))
    tasks = multitask.MultiTask([Reducing(shapes.shapes_task_config("circle"), name="circle")])
    config_checks.check_metric_names(params, tasks)
    with pytest.raises(ValueError, match=r"is 'square\.f1'; allowed: circle\.<a key of its evaluation logs>\.$"):
        config_checks.check_metric_names(
            train.parse_params(train.launcher_flags(params_override="trainer.best_checkpoint_eval_metric=square.f1")),
            tasks)


def test_missing_init_checkpoint(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _refused(tmp_path, f"task.init_checkpoint={tmp_path}/nope") == (
        f"task.init_checkpoint is '{tmp_path}/nope', which is no checkpoint; allowed: a checkpoint prefix such as "
        "<dir>/ckpt-100 (its .index file exists) or a directory holding checkpoints.")
    assert _refused(tmp_path, f"task.init_checkpoint={empty}") == (
        f"task.init_checkpoint is '{empty}', a directory without a checkpoint; allowed: a directory holding "
        "checkpoints or a checkpoint prefix such as <dir>/ckpt-100.")
    assert _refused(tmp_path, f"task.tasks.square.task_config.init_checkpoint={empty}").startswith(
        f"task.tasks.square.task_config.init_checkpoint is '{empty}', a directory without a checkpoint")


def test_init_checkpoint_is_checked_only_where_a_run_reads_it(tmp_path):
    params = train.parse_params(train.launcher_flags(params_override=f"task.init_checkpoint={tmp_path}/nope"))
    config_checks.check_checkpoints(params, "continuous_eval", str(tmp_path / "run"))
    checkpoint = tf.train.Checkpoint(step=tf.Variable(1))
    prefix = checkpoint.save(str(tmp_path / "resumed" / "ckpt"))
    config_checks.check_checkpoints(params, "train", str(tmp_path / "resumed"))  # A resumed run does not read it.
    for good in (prefix, str(tmp_path / "resumed")):
        params = train.parse_params(train.launcher_flags(params_override=f"task.init_checkpoint={good}"))
        config_checks.check_checkpoints(params, "train", str(tmp_path / "new"))


def test_eval_without_a_checkpoint_is_refused_before_anything_runs(tmp_path):
    message = (f"--mode=eval: --model_dir '{tmp_path / 'run'}' has no checkpoint to evaluate; allowed: a model_dir "
               "a training run wrote checkpoints to (or --mode=continuous_eval, which waits).")
    assert _refused(tmp_path, "trainer.train_steps=2", mode="eval") == message
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(train.UsageError) as error:
        train.run(train.launcher_flags(model_dir=str(tmp_path / "run"), mode="eval"))
    assert str(error.value) == message
    assert os.listdir(tmp_path / "run") == ["notes.txt"]


@pytest.mark.parametrize("override, mode, message", [
    ("trainer.summary_interval=3,trainer.steps_per_loop=2", "train",
     "trainer.summary_interval is 3; it must be a positive multiple of trainer.steps_per_loop (2), e.g. 4."),
    ("trainer.summary_interval=0", "train_and_eval",
     "trainer.summary_interval is 0; it must be a positive multiple of trainer.steps_per_loop (1), e.g. 1."),
    ("trainer.steps_per_loop=0", "train", "trainer.steps_per_loop is 0; it must be >= 1."),
    ("trainer.validation_steps=0", "eval",
     "trainer.validation_steps is 0; it must be > 0, or -1 for each task's whole validation set."),
    ("trainer.best_checkpoint_metric_comp=hi", "train",
     "trainer.best_checkpoint_metric_comp is 'hi'; allowed: higher, lower."),
    ("trainer.train_steps=-1", "train", "trainer.train_steps is -1; it must be >= 1."),
    ("trainer.checkpoint_interval=0", "train", "trainer.checkpoint_interval is 0; it must be >= 1."),
    ("trainer.max_to_keep=0", "train_and_eval", "trainer.max_to_keep is 0; it must be >= 1."),
    ("trainer.validation_interval=0", "train_and_eval", "trainer.validation_interval is 0; it must be >= 1."),
    # Set without a metric, early stopping is off; the value is still checked.
    ("task.tasks.circle.early_stopping.mode=up", "train",
     "task.task_routines[0].early_stopping.mode is 'up'; allowed: higher, lower."),
    ("trainer.trainer_type=interleaving,trainer.task_sampler.type=epoch_shuffled,"
     "trainer.task_sampler.epoch_shuffled.batches_per_epoch=[4,4]", "train",
     "trainer.task_sampler.epoch_shuffled.batches_per_epoch has 2 entries; it needs one per task, in task order "
     "(circle, square, inv_circle)."),
])
def test_orbit_intervals_and_the_comparison(tmp_path, override, mode, message):
    assert _refused(tmp_path, override, mode=mode) == message


def test_intervals_of_a_mode_that_does_not_use_them_pass():
    train.parse_params(train.launcher_flags(mode="eval", params_override="trainer.summary_interval=3,"
                                                                        "trainer.steps_per_loop=2"))
    train.parse_params(train.launcher_flags(mode="train", params_override="trainer.validation_steps=0"))


def test_a_task_s_optimizer_type_is_checked_before_anything_is_written(tmp_path):
    config = tmp_path / "circle_lars.yaml"
    config.write_text("task: {tasks: {circle: {optimizer_config: {optimizer: {type: lars}, "
                      "learning_rate: {type: constant}}}}}")
    with pytest.raises(train.UsageError) as error:
        train.run(train.launcher_flags(model_dir=str(tmp_path / "run"), config_file=[str(config)]))
    assert str(error.value) == (
        "task.tasks.circle.optimizer_config.optimizer.type is 'lars'; allowed (those built with Keras 3 here): "
        "adafactor_keras, adagrad, adam, adam_experimental, adamw, adamw_experimental, lamb, rmsprop, sgd, "
        "sgd_experimental.")
    assert not (tmp_path / "run").exists()
    train.parse_params(train.launcher_flags(config_file=[str(config)], mode="eval"))  # Evaluation builds none.
