"""Tests for MultiTaskEvaluator and the best-checkpoint exporter."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import evaluator as evaluator_lib
from multitask.core import checkpoint_exporter


class AggregatingToyTask(toy.ToyTask):
    """Computes MAE in numpy over the whole eval set via aggregate_logs."""

    def validation_step(self, inputs, model, metrics=None):
        logs = super().validation_step(inputs, model, metrics)
        features, labels = inputs
        logs["predictions"] = model(features, training=False)
        logs["labels"] = labels
        return logs

    def aggregate_logs(self, state, step_logs):
        state = state or {"predictions": [], "labels": []}
        for key in state:
            state[key].extend(np.asarray(t) for t in step_logs[key])
        return state

    def reduce_aggregated_logs(self, aggregated_logs, global_step=None):
        predictions = np.concatenate(aggregated_logs["predictions"])
        labels = np.concatenate(aggregated_logs["labels"])
        return {"numpy_mae": float(np.mean(np.abs(predictions - labels))), "count": len(labels)}


def _model():
    model = toy.ToyMultiTaskModel()
    model.build()
    return model


def _hand_metrics(model, task_name, seed):
    x, y = toy.toy_arrays(seed)
    prediction = model.sub_tasks[task_name](x).numpy()
    return np.mean((prediction - y) ** 2), np.mean(np.abs(prediction - y))


@pytest.mark.parametrize("mirrored", [False, True])
def test_evaluate_matches_hand_computed_metrics(mirrored, two_cpu_strategy):
    strategy = two_cpu_strategy if mirrored else tf.distribute.get_strategy()
    with strategy.scope():
        model = _model()
        tasks = [AggregatingToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())]
        evaluator = evaluator_lib.MultiTaskEvaluator(tasks, model)
    logs = evaluator.evaluate(tf.constant(-1))
    assert set(logs["foo"]) == {"validation_loss", "mae", "numpy_mae", "count"}
    assert set(logs["bar"]) == {"validation_loss", "mae"}
    assert logs["foo"]["count"] == 64
    for name, seed in (("foo", 2), ("bar", 4)):
        mse, mae = _hand_metrics(model, name, seed)
        np.testing.assert_allclose(logs[name]["validation_loss"], mse, rtol=1e-5)
        np.testing.assert_allclose(logs[name]["mae"], mae, rtol=1e-5)
    np.testing.assert_allclose(logs["foo"]["numpy_mae"], logs["foo"]["mae"], rtol=1e-5)


def test_eval_steps_limit_each_task():
    model = _model()
    evaluator = evaluator_lib.MultiTaskEvaluator(
        [AggregatingToyTask(toy.FooConfig())], model, eval_steps={"foo": 2}
    )
    assert evaluator.evaluate(tf.constant(-1))["foo"]["count"] == 16


def test_one_keras_model_for_all_tasks():
    model = toy.ToyTask(toy.FooConfig()).build_model()
    evaluator = evaluator_lib.MultiTaskEvaluator(
        [toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())], model
    )
    logs = evaluator.evaluate(tf.constant(-1))
    x, y = toy.toy_arrays(4)
    np.testing.assert_allclose(logs["bar"]["mae"], np.mean(np.abs(model(x).numpy() - y)), rtol=1e-5)


def test_eval_datasets_replace_validation_data():
    model = _model()
    x, y = toy.toy_arrays(9, n=10)
    evaluator = evaluator_lib.MultiTaskEvaluator(
        [toy.ToyTask(toy.FooConfig())], model,
        eval_datasets={"foo": tf.data.Dataset.from_tensor_slices((x, y)).batch(10)},
    )
    logs = evaluator.evaluate(tf.constant(-1))
    np.testing.assert_allclose(
        logs["foo"]["mae"], np.mean(np.abs(model.sub_tasks["foo"](x).numpy() - y)), rtol=1e-5
    )


def test_task_without_sub_model_is_rejected():
    with pytest.raises(KeyError, match="'orphan' has no sub-model"):
        evaluator_lib.MultiTaskEvaluator([toy.ToyTask(toy.FooConfig(), name="orphan")], _model())


def test_best_checkpoint_exporter_keeps_the_best(tmp_path):
    model = _model()
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, global_step=step)
    exporter = checkpoint_exporter.BestCheckpointExporter(str(tmp_path / "best"), "foo.mae", "lower")
    for value, global_step in ((0.5, 1), (0.3, 2), (0.4, 3)):
        step.assign(global_step)
        exporter.maybe_export_checkpoint(checkpoint, {"foo": {"mae": value}, "bar": {"mae": 0.0}}, global_step)
    with open(os.path.join(tmp_path, "best", "info.json")) as stream:
        info = json.load(stream)
    assert info["best_ckpt_global_step"] == 2
    assert info["foo"]["mae"] == pytest.approx(0.3)
    restored = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(global_step=restored).read(exporter.best_ckpt_path).expect_partial()
    assert int(restored.numpy()) == 2


def test_best_checkpoint_exporter_killed_mid_save_exports_again(tmp_path, monkeypatch):
    """A crash inside the save of a new best checkpoint leaves info.json at the
    previous best, so the resumed run's exporter exports that evaluation again
    (info.json written first would name weights that were never saved)."""
    step = tf.Variable(1, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(global_step=step)
    best = str(tmp_path / "best")
    checkpoint_exporter.BestCheckpointExporter(best, "foo.mae", "lower").maybe_export_checkpoint(
        checkpoint, {"foo": {"mae": 0.5}}, 1)
    record_state = tf.train.CheckpointManager._record_state  # pylint: disable=protected-access

    def crash(self):
        raise SystemExit("killed mid-save")

    monkeypatch.setattr(tf.train.CheckpointManager, "_record_state", crash)
    step.assign(2)
    with pytest.raises(SystemExit):
        checkpoint_exporter.BestCheckpointExporter(best, "foo.mae", "lower").maybe_export_checkpoint(
            checkpoint, {"foo": {"mae": 0.3}}, 2)
    with open(os.path.join(best, "info.json")) as stream:
        assert json.load(stream)["best_ckpt_global_step"] == 1
    monkeypatch.setattr(tf.train.CheckpointManager, "_record_state", record_state)
    resumed = checkpoint_exporter.BestCheckpointExporter(best, "foo.mae", "lower")
    assert resumed.maybe_export_checkpoint(checkpoint, {"foo": {"mae": 0.3}}, 2)
    with open(os.path.join(best, "info.json")) as stream:
        assert json.load(stream)["best_ckpt_global_step"] == 2
    restored = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(global_step=restored).read(resumed.best_ckpt_path).expect_partial()
    assert int(restored.numpy()) == 2


def test_best_checkpoint_exporter_errors(tmp_path):
    with pytest.raises(ValueError, match="best_checkpoint_metric_comp is 'bigger'"):
        checkpoint_exporter.BestCheckpointExporter(str(tmp_path), "foo.mae", "bigger")
    exporter = checkpoint_exporter.BestCheckpointExporter(str(tmp_path), "foo.accuracy", "higher")
    with pytest.raises(KeyError, match="'foo.accuracy' is not among the evaluation results: foo.mae"):
        exporter.maybe_export_checkpoint(tf.train.Checkpoint(), {"foo": {"mae": 1.0}}, 1)


def test_evaluator_exports_best_checkpoint(tmp_path):
    model = _model()
    exporter = checkpoint_exporter.BestCheckpointExporter(str(tmp_path), "bar.mae", "lower")
    evaluator = evaluator_lib.MultiTaskEvaluator(
        [toy.ToyTask(toy.BarConfig())], model, checkpoint_exporter=exporter
    )
    evaluator.evaluate(tf.constant(-1))
    assert exporter.best_ckpt_path is not None
    assert os.path.exists(os.path.join(tmp_path, "info.json"))
