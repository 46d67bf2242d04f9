"""Tests for the launcher: a real short run, and one-line errors that write nothing."""
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

import toy
from multitask import multitask
from multitask import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "trainer.train_steps=4,trainer.steps_per_loop=2,trainer.validation_interval=2,trainer.checkpoint_interval=2"




def _files(directory):
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory) for name in names
    )


def test_default_experiment_short_run_writes_everything(tmp_path, capsys):
    logs = train.run(train.launcher_flags(model_dir=str(tmp_path), params_override=TINY))
    assert set(logs) == {"circle", "square", "inv_circle"}
    assert all({"accuracy", "loss"} <= set(metrics) for metrics in logs.values())
    files = _files(tmp_path)
    assert "params.yaml" in files and "metrics.json" in files
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")
    assert any(f.startswith("train/circle/events") for f in files)
    assert any(f.startswith("validation/square/events") for f in files)
    with open(tmp_path / "metrics.json") as stream:
        assert json.load(stream) == logs
    out = capsys.readouterr().out
    assert "Final test metrics" in out and "inv_circle" in out


def test_config_file_and_params_override_apply_in_order(tmp_path):
    config = tmp_path / "override.yaml"
    config.write_text("trainer:\n  train_steps: 99\n  trainer_type: interleaving\n")
    params = train.parse_params(
        train.launcher_flags(config_file=[str(config)], params_override="trainer.train_steps=7")
    )
    assert params.trainer.train_steps == 7
    assert params.trainer.trainer_type == "interleaving"


@pytest.mark.parametrize(
    "flags, message",
    [
        (dict(experiment="nope"), "--experiment: unknown experiment 'nope'; registered: .*shapes"),
        (dict(params_override="trainer.nope=1"), "unknown key 'trainer.nope'; allowed under trainer: .*train_steps"),
        (dict(params_override="{trainer: [1, 2"), "--params_override: malformed YAML"),
        (dict(config_file=["/does/not/exist.yaml"]), "--config_file: no such file"),
        (dict(params_override="trainer.trainer_type=alternate"), "trainer.trainer_type is 'alternate'"),
        (dict(params_override="runtime.distribution_strategy=gpus"), "runtime.distribution_strategy is 'gpus'"),
        (dict(params_override="runtime.mixed_precision_dtype=float8"),
         "runtime.mixed_precision_dtype is 'float8'; allowed: float32, float16, bfloat16"),
        (dict(gin_params=["NoSuchThing.value = 1"]), "--gin_params: "),
        (dict(mode="continuous_train_and_eval"), "mode is 'continuous_train_and_eval'; allowed"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(flags, message):
    with pytest.raises(train.UsageError, match=message) as error:
        train.parse_params(train.launcher_flags(**flags))
    assert "\n" not in str(error.value)


def test_malformed_config_file_names_the_line(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  train_steps: [1, 2\n")
    with pytest.raises(train.UsageError, match="--config_file: malformed YAML at line 3"):
        train.parse_params(train.launcher_flags(config_file=[str(config)]))


def test_unusable_model_dir(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(train.UsageError, match="is a file, not a directory"):
        train.resolve_model_dir(str(a_file), "shapes")
    with pytest.raises(train.UsageError, match="which is a file"):
        train.resolve_model_dir(str(a_file / "sub"), "shapes")
    assert train.resolve_model_dir(None, "shapes").startswith(os.path.join("runs", "shapes-"))


def _launch(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "multitask.train", *args], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
    )


def test_launcher_exits_2_and_leaves_existing_run_untouched(tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "ckpt-1.index").write_text("precious")
    before = _files(model_dir)
    result = _launch(tmp_path, "--experiment=shapes", f"--model_dir={model_dir}",
                     "--params_override=trainer.bogus=1")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [
        error_lines[0]
    ] and "unknown key 'trainer.bogus'" in error_lines[0]
    assert "Traceback" not in result.stderr
    assert _files(model_dir) == before
    assert (model_dir / "ckpt-1.index").read_text() == "precious"
    result = _launch(tmp_path, "--experiment=nope")
    assert result.returncode == 2 and "unknown experiment 'nope'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_final_evaluation_falls_back_to_validation_data():
    task = toy.ToyTask(toy.FooConfig())
    model = task.build_model()
    split, logs = train.final_evaluation(multitask.as_multi_task(task), model)
    assert split == "validation"
    assert set(logs["foo"]) == {"validation_loss", "mae"}
