"""Evaluation-only modes read a training run and never clobber it."""
import gc
import logging
import os

import pytest
import tensorflow as tf

import test_train_lib
from multitask import train

TINY = ("trainer.train_steps=4,trainer.steps_per_loop=2,trainer.validation_interval=2,"
        "trainer.checkpoint_interval=2,trainer.summary_interval=2,trainer.continuous_eval_timeout=1")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def tf_warnings():
    handler = _Records()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _run(model_dir, mode):
    return train.run(train.launcher_flags(
        experiment="shapes_interleaving", mode=mode, model_dir=str(model_dir), params_override=TINY))


def test_eval_modes_write_beside_the_training_record_without_restore_warnings(tmp_path, tf_warnings):
    _run(tmp_path, "train")
    training_record = (tmp_path / "metrics.json").read_bytes()
    logs = _run(tmp_path, "eval")
    gc.collect()  # A partial restore warns when its status is collected.
    assert not [m for m in tf_warnings if "could not be found" in m or "Unresolved object" in m]
    assert (tmp_path / "metrics.json").read_bytes() == training_record
    assert set(os.listdir(tmp_path)) >= {"metrics.json", "metrics-ckpt-4.json"}
    assert _run(tmp_path, "continuous_eval") == logs


def _toy_run(model_dir, mode):
    params = test_train_lib._params()
    params.trainer.continuous_eval_timeout = 1
    return test_train_lib._run(params, model_dir, mode)


def test_eval_refuses_a_model_dir_without_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="has no checkpoint to evaluate"):
        _toy_run(tmp_path, "eval")
    assert not os.listdir(tmp_path)


def test_continuous_eval_gives_up_after_its_timeout_without_a_checkpoint(tmp_path, capsys):
    assert train.run(train.launcher_flags(mode="continuous_eval", model_dir=str(tmp_path),
                                          params_override=TINY)) == {}
    assert "nothing was evaluated" in capsys.readouterr().out
    assert not os.listdir(tmp_path)


def test_a_checkpoint_without_the_model_is_refused(tmp_path):
    tf.train.CheckpointManager(tf.train.Checkpoint(other=tf.Variable(1.0)), str(tmp_path), 1).save()
    with pytest.raises(ValueError, match="does not hold the evaluated model"):
        _toy_run(tmp_path, "eval")
