"""Tests for aggregate model selection and early stopping (multitask.model_selection)."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions as cfg

import toy
from multitask import configs
from multitask import evaluator as evaluator_lib
from multitask import model_selection
from multitask import multitask
from multitask import train_lib
from multitask.core import checkpoint_exporter

LOGS = {"a": {"accuracy": 0.88}, "b": {"loss": 0.4, "accuracy": 0.5}}


def test_delta_m_by_hand():
    selector = model_selection.ModelSelector(
        "delta_m", ["a.accuracy", "b.loss"], baselines=[0.8, 0.5], lower_is_better=[False, True]
    )
    # a: +(0.88 - 0.8) / 0.8 = 0.1; b: -(0.4 - 0.5) / 0.5 = 0.2; mean 0.15.
    np.testing.assert_allclose(selector.score(LOGS), 0.15)


def test_mean_and_weighted_mean_by_hand():
    np.testing.assert_allclose(
        model_selection.ModelSelector("mean", ["a.accuracy", "b.accuracy"]).score(LOGS), 0.69
    )
    weighted = model_selection.ModelSelector("weighted_mean", ["a.accuracy", "b.accuracy"], weights=[3, 1])
    np.testing.assert_allclose(weighted.score(LOGS), (3 * 0.88 + 0.5) / 4)


def test_selector_errors():
    with pytest.raises(ValueError, match="method is 'median'"):
        model_selection.ModelSelector("median", ["a.accuracy"])
    with pytest.raises(ValueError, match="baselines needs one value per metric"):
        model_selection.ModelSelector("delta_m", ["a.accuracy", "b.loss"], baselines=[0.8])
    with pytest.raises(ValueError, match="non-zero"):
        model_selection.ModelSelector("delta_m", ["a.accuracy"], baselines=[0.0])
    with pytest.raises(KeyError, match="a.accuracy, b.loss"):
        model_selection.ModelSelector("mean", ["a.f1"]).score(LOGS)
    with pytest.raises(ValueError, match="patience needs"):
        configs.MultiTaskTrainerConfig(model_selection={"patience": 2}).validate()


def test_patience_tracker_counts_and_checkpoints(tmp_path):
    tracker = model_selection.PatienceTracker("lower", patience=2, min_delta=0.01)
    assert [tracker.update(v) for v in (1.0, 0.9, 0.895, 0.95)] == [False, False, False, True]
    assert tracker.best_value == 0.9
    path = tf.train.Checkpoint(t=tracker).save(str(tmp_path / "ckpt"))
    fresh = model_selection.PatienceTracker("lower", patience=2, min_delta=0.01)
    tf.train.Checkpoint(t=fresh).read(path).assert_existing_objects_matched()
    assert fresh.best_value == 0.9 and int(fresh.wait.numpy()) == 2


def test_task_early_stopping_disables_the_right_task_at_the_right_evaluation(tmp_path):
    mt = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
    stopper = model_selection.TaskEarlyStopping(mt, {
        "foo": configs.EarlyStoppingConfig(metric="mae", mode="lower", patience=2),
        "bar": configs.EarlyStoppingConfig(metric="mae", mode="lower", patience=1),
    }, log_dir=str(tmp_path))
    foo = [1.0, 0.8, 0.9, 0.7, 0.75, 0.71]   # no improvement at evals 3 and 5..6 -> stops at eval 6
    bar = [1.0, 0.9, 0.8, 0.7, 0.6, 0.6]     # stops at eval 6 too (patience 1)
    stopped_at = {}
    for i, (f, b) in enumerate(zip(foo, bar)):
        for name in stopper.update({"foo": {"mae": f}, "bar": {"mae": b}}, step=10 * (i + 1)):
            stopped_at[name] = i + 1
        if i + 1 == 5:
            assert mt.active_tasks == ["foo", "bar"]
    assert stopped_at == {"foo": 6, "bar": 6}
    assert stopper.all_stopped
    events = [json.loads(line) for line in open(tmp_path / "early_stopping.json")]
    assert [(e["task"], e["step"], e["best"]) for e in events] == [("foo", 60, 0.7), ("bar", 60, 0.6)]


def test_early_stopping_of_one_task_only():
    mt = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
    stopper = model_selection.TaskEarlyStopping(
        mt, {"bar": configs.EarlyStoppingConfig(metric="mae", mode="lower", patience=1)}
    )
    assert stopper.update({"foo": {"mae": 1.0}, "bar": {"mae": 1.0}}, 1) == []
    assert stopper.update({"foo": {"mae": 1.0}, "bar": {"mae": 1.1}}, 2) == ["bar"]
    assert mt.active_tasks == ["foo"] and not stopper.all_stopped


def test_exporter_keeps_the_best_aggregate(tmp_path):
    selector = model_selection.ModelSelector("delta_m", ["a.accuracy"], baselines=[0.5])
    exporter = checkpoint_exporter.BestCheckpointExporter(
        str(tmp_path), "aggregate.delta_m", "higher", selector=selector
    )
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.0))
    assert exporter.maybe_export_checkpoint(checkpoint, {"a": {"accuracy": 0.6}}, 1)
    assert not exporter.maybe_export_checkpoint(checkpoint, {"a": {"accuracy": 0.55}}, 2)
    info = json.load(open(tmp_path / "info.json"))
    np.testing.assert_allclose(info["aggregate"]["delta_m"], 0.2)


def _params(**routine_kwargs):
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(task_routines=(
            configs.TaskRoutine(task_config=toy.FooConfig(), **routine_kwargs),
            configs.TaskRoutine(task_config=toy.BarConfig(), **routine_kwargs),
        )),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type="joint", train_steps=30, steps_per_loop=2, validation_interval=2,
            validation_steps=-1, checkpoint_interval=2, summary_interval=2,
            optimizer_config={"optimizer": {"type": "sgd"},
                              "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.01}}},
            best_checkpoint_export_subdir="best",
            model_selection={"method": "mean", "metrics": ("foo.mae", "bar.mae")},
            best_checkpoint_metric_comp="lower",
        ),
        runtime=cfg.RuntimeConfig(distribution_strategy="default"),
    )


def test_run_ends_when_every_task_has_stopped(tmp_path):
    # min_delta is huge: no evaluation after the first improves, so with
    # patience 1 every task stops at the second evaluation (step 4).
    params = _params(early_stopping={"metric": "mae", "mode": "lower", "patience": 1, "min_delta": 1e9})
    keras.utils.set_random_seed(0)
    task = multitask.MultiTask.from_config(params.task)
    model = toy.ToyMultiTaskModel()
    train_lib.run_experiment(distribution_strategy=tf.distribute.get_strategy(), task=task, model=model,
                             mode="train_and_eval", params=params, model_dir=str(tmp_path))
    assert task.active_tasks == []
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("-4")
    events = [json.loads(line) for line in open(tmp_path / "early_stopping.json")]
    assert {(e["task"], e["step"]) for e in events} == {("foo", 4), ("bar", 4)}
    assert "aggregate" in json.load(open(os.path.join(tmp_path, "best", "info.json")))


def _weighted_run(model_dir, train_steps):
    """pcgrad with early stopping on bar alone (stops at step 4), through `run_experiment`."""
    params = _params()
    params.override({"task": {"task_routines": [
        {}, {"early_stopping": {"metric": "mae", "mode": "lower", "patience": 1, "min_delta": 1e9}}]},
        "trainer": {"weighting": {"type": "pcgrad"}, "train_steps": train_steps}}, is_strict=False)
    params.validate()
    keras.utils.set_random_seed(0)
    task = multitask.MultiTask.from_config(params.task)
    model = toy.ToyMultiTaskModel()
    train_lib.run_experiment(distribution_strategy=tf.distribute.get_strategy(), task=task, model=model,
                             mode="train_and_eval", params=params, model_dir=str(model_dir))
    return task, model


def test_a_weighting_run_goes_on_after_early_stopping_and_resumes_exactly(tmp_path):
    """The run trains foo alone after bar stops (no error at the next loop), and a run
    stopped at step 6 and resumed ends exactly where the uninterrupted one does."""
    task, model = _weighted_run(tmp_path / "whole", 12)
    assert task.active_tasks == ["foo"]
    assert tf.train.latest_checkpoint(str(tmp_path / "whole")).endswith("-12")
    events = [json.loads(line) for line in open(tmp_path / "whole" / "early_stopping.json")]
    assert [(e["task"], e["step"]) for e in events] == [("bar", 4)]
    _weighted_run(tmp_path / "resumed", 6)
    resumed_task, resumed = _weighted_run(tmp_path / "resumed", 12)
    assert resumed_task.active_tasks == ["foo"]
    for a, b in zip(model.variables, resumed.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    events = [json.loads(line) for line in open(tmp_path / "resumed" / "early_stopping.json")]
    assert [(e["task"], e["step"]) for e in events] == [("bar", 4)]


class _Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", [3, 4])
def test_a_run_killed_around_an_evaluation_resumes_to_the_same_stop(tmp_path, monkeypatch, crash_at):
    """Checkpoints at steps 2, 6, 10, evaluations every 2: the checkpoint at step 6 is
    written before the evaluation at 6 (where bar stops). A crash in that evaluation
    (crash_at=3), or in the next one after bar's stop was logged (crash_at=4),
    resumes from step 6, evaluates at 6 again and ends as the uninterrupted run:
    same variables, bar stopped once, at step 6."""
    def run(model_dir):
        params = _params()
        params.override({"task": {"task_routines": [
            {}, {"early_stopping": {"metric": "mae", "mode": "lower", "patience": 2, "min_delta": 1e9}}]},
            "trainer": {"weighting": {"type": "pcgrad"}, "train_steps": 10, "checkpoint_interval": 4}},
            is_strict=False)
        keras.utils.set_random_seed(0)
        task = multitask.MultiTask.from_config(params.task)
        model = toy.ToyMultiTaskModel()
        train_lib.run_experiment(distribution_strategy=tf.distribute.get_strategy(), task=task, model=model,
                                 mode="train_and_eval", params=params, model_dir=str(model_dir))
        events = [json.loads(line) for line in open(model_dir / "early_stopping.json")]
        return task, model, [(e["task"], e["step"]) for e in events]

    whole_task, whole, whole_events = run(tmp_path / "whole")
    assert whole_events == [("bar", 6)]
    evaluate, calls = evaluator_lib.MultiTaskEvaluator.evaluate, []

    def crashing_evaluate(self, num_steps):
        calls.append(num_steps)
        if len(calls) == crash_at:
            raise _Crash()
        return evaluate(self, num_steps)

    monkeypatch.setattr(evaluator_lib.MultiTaskEvaluator, "evaluate", crashing_evaluate)
    with pytest.raises(_Crash):
        run(tmp_path / "killed")
    assert tf.train.latest_checkpoint(str(tmp_path / "killed")).endswith("-6")
    monkeypatch.setattr(evaluator_lib.MultiTaskEvaluator, "evaluate", evaluate)
    task, model, events = run(tmp_path / "killed")
    assert events == whole_events
    assert task.active_tasks == whole_task.active_tasks == ["foo"]
    for a, b in zip(whole.variables, model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_run_that_ended_early_stays_ended(tmp_path):
    """Started again on its model_dir, a run that early stopping ended trains no further."""
    params = _params(early_stopping={"metric": "mae", "mode": "lower", "patience": 1, "min_delta": 1e9})
    for _ in range(2):
        task = multitask.MultiTask.from_config(params.task)
        train_lib.run_experiment(distribution_strategy=tf.distribute.get_strategy(), task=task,
                                 model=toy.ToyMultiTaskModel(), mode="train_and_eval", params=params,
                                 model_dir=str(tmp_path))
        assert tf.train.latest_checkpoint(str(tmp_path)).endswith("-4")
    assert len(open(tmp_path / "early_stopping.json").readlines()) == 2  # foo and bar, once each
