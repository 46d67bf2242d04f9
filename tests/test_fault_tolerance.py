"""Preemption: SIGKILL mid-run or mid-save, restart, and end as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf


HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 600
OVERRIDE = (f"runtime.seed=7,trainer.train_steps={STEPS},trainer.steps_per_loop=50,"
            "trainer.checkpoint_interval=50,trainer.summary_interval=50,trainer.max_to_keep=3")
FLAGS = ["--experiment=shapes", "--mode=train", f"--params_override={OVERRIDE}"]


def _env(**extra):
    return dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _start(model_dir, **env):
    return subprocess.Popen(
        [sys.executable, os.path.join(HERE, "preemptible_run.py"), *FLAGS, f"--model_dir={model_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(**env), start_new_session=True,
    )


def _finish(process, timeout=120):
    """Waits for `process`; kills its process group if it outlives `timeout`."""
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        return None, ""
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _state(model_dir):
    reader = tf.train.load_checkpoint(str(model_dir))
    values = {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(str(model_dir))
              if "OBJECT_GRAPH" not in name}
    with open(os.path.join(model_dir, "metrics.json")) as stream:
        return values, json.load(stream)


def _assert_same(model_dir, reference):
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{STEPS}")
    values, metrics = _state(model_dir)
    assert values.keys() == reference[0].keys()
    for name in values:
        np.testing.assert_array_equal(values[name], reference[0][name], err_msg=name)
    assert metrics == reference[1]


def _wait_for_checkpoint_then_kill(process):
    deadline = time.monotonic() + 60
    for line in process.stdout:
        if "saved checkpoint to" in line or time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)


def test_sigkill_mid_run_or_mid_save_then_restart_equals_uninterrupted(tmp_path):
    """Three runs side by side: uninterrupted; SIGKILLed by the test after its
    first checkpoint; SIGKILLed inside the save of ckpt-150 (data written, state
    file not yet). Both killed runs restart from their latest checkpoint and end
    with the uninterrupted run's variables and metrics."""
    whole, killed, torn = tmp_path / "whole", tmp_path / "killed", tmp_path / "torn"
    processes = [_start(whole), _start(killed), _start(torn, KILL_DURING_SAVE="150")]
    try:
        _wait_for_checkpoint_then_kill(processes[1])
        codes = [_finish(p) for p in processes]
    finally:
        for process in processes:
            _finish(process, timeout=1)
    assert codes[0][0] == 0, codes[0][1][-3000:]
    assert codes[1][0] == codes[2][0] == -signal.SIGKILL, (codes[1][1][-2000:], codes[2][1][-2000:])
    latest = tf.train.latest_checkpoint(str(killed))
    assert latest and int(latest.rsplit("-", 1)[1]) < STEPS
    # The torn save left its data files, but the previous checkpoint is still the latest.
    assert tf.train.latest_checkpoint(str(torn)).endswith("ckpt-100")
    assert any(name.startswith("ckpt-150") for name in os.listdir(torn))

    restarts = [_start(killed), _start(torn)]
    try:
        codes = [_finish(p) for p in restarts]
    finally:
        for process in restarts:
            _finish(process, timeout=1)
    assert [code for code, _ in codes] == [0, 0], [output[-3000:] for _, output in codes]
    reference = _state(whole)
    _assert_same(killed, reference)
    _assert_same(torn, reference)
