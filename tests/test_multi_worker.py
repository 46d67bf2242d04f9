"""Two worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy."""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_two_workers_train_both_trainers_to_identical_variables(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    try:
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
            processes.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "multi_worker_run.py"), str(tmp_path), str(tmp_path / "run")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
            ))
        outputs = [process.communicate(timeout=150)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert [p.returncode for p in processes] == [0, 0], [output[-3000:] for output in outputs]
    for kind in ("joint", "interleaving"):
        chief, other = (np.load(tmp_path / f"{kind}-worker{i}.npz") for i in range(2))
        assert len(chief.files) > 5 and chief.files == other.files
        for name in chief.files:
            np.testing.assert_array_equal(chief[name], other[name])
        # Only the chief writes to model_dir; the other worker saves to a scratch directory.
        latest = tf.train.latest_checkpoint(str(tmp_path / "run" / kind))
        assert latest.endswith("ckpt-4")
        reader = tf.train.load_checkpoint(latest)
        assert reader.get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE") == 4
