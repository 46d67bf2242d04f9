"""Preemption: SIGKILL at random points, restart, and end as an uninterrupted run.

Resume equals uninterrupted, for everything the launcher runs. Each scenario
is a launcher run (`tests/preemptible_run.py`) of a shapes experiment with a
YAML override: the joint trainer in mode train, and in mode train_and_eval
the interleaving trainer with the proportional, annealing and
epoch_shuffled samplers (test_interleaving_trainer restores the others in
process), per-task early stopping, run-level model selection (patience and
best-checkpoint export) and successive regularization. It runs once uninterrupted, and once per kill
point SIGKILLed there and restarted to completion; the finished runs must
hold the same final checkpoint (tensor by tensor), the same `metrics.json`,
the same early-stopping log (each stop logged once) and the same exported
best checkpoint and `info.json`.

Kill points are drawn per scenario by a `random.Random` seeded with `SEED`
and the scenario's name (set RESUME_SCENARIOS_SEED to explore others), or
fixed where a scenario needs particular ones:

- `line=K`: the test SIGKILLs the process group once it has read the K-th
  "saved checkpoint to" line; the run was somewhere after that save.
- `save=N`: inside the save of ckpt-N (data written, state file not);
  `save=best_ckpt-1` inside the best-checkpoint exporter's first save.
- `eval=N` / `eval=N:end`: at the start / the end of the N-th evaluation, so
  after the checkpoint taken at that step (see `preemptible_run.py`).

The train data are cut in batches of `BATCH` = 96 out of 800 points per task
(8 1/3 batches an epoch): a checkpoint lies at an epoch boundary of a task
only when that task trained a multiple of 25 steps, so the interleaving runs
resume in the middle of an epoch (checked) and then cross into a reshuffled
one.

The 17 processes (each costs mostly its start-up, about 10 s of CPU) run
`PARALLEL` at a time in a module fixture, killed runs first; the tests then
check one scenario each.
"""
import concurrent.futures
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
import tensorflow as tf
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = int(os.environ.get("RESUME_SCENARIOS_SEED", "16"))
STEPS, LOOP, EVAL_EVERY = 40, 5, 10  # a checkpoint every LOOP steps, an evaluation every EVAL_EVERY
BATCH, TRAIN_POINTS = 96, 800
PARALLEL = int(os.environ.get("RESUME_SCENARIOS_PARALLEL", "3"))  # processes at a time, on 2 cores
_SLOTS = threading.BoundedSemaphore(PARALLEL)
TIMEOUT = 300  # per process
SAVED = "saved checkpoint to"
TASKS = ("circle", "square", "inv_circle")


@dataclasses.dataclass(frozen=True)
class Kill:
    """Where the killed run dies: `kind` is "line", "save" or "eval" (module docstring)."""

    kind: str
    at: str

    def env(self) -> Dict[str, str]:
        return {"save": {"KILL_DURING_SAVE": self.at}, "eval": {"KILL_DURING_EVAL": self.at}}.get(self.kind, {})

    def __str__(self):
        return f"{self.kind}={self.at}"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A launcher run; its `kills`, or one drawn up to `last_step` (the earliest step it may end at)."""

    name: str
    experiment: str
    trainer: dict
    routines: Tuple[dict, ...] = ({}, {}, {})
    kills: Tuple[Kill, ...] = ()
    last_step: int = STEPS
    mode: str = "train_and_eval"
    mid_epoch: bool = True  # Whether every checkpoint it may restore is in the middle of an epoch.

    def config(self) -> dict:
        trainer = dict(train_steps=STEPS, steps_per_loop=LOOP, summary_interval=LOOP, checkpoint_interval=LOOP,
                       validation_interval=EVAL_EVERY, max_to_keep=3, **self.trainer)
        routines = [dict(routine, task_config={"train_data": {"global_batch_size": BATCH}}) for routine in self.routines]
        return {"runtime": {"seed": 7}, "trainer": trainer, "task": {"task_routines": routines}}

    def kill_points(self) -> Tuple[Kill, ...]:
        if self.kills:
            return self.kills
        rng = random.Random(f"{SEED}-{self.name}")
        kind = rng.choice(["line", "save"] + (["eval"] if "eval" in self.mode else []))
        if kind == "line":  # Not the last lines: the run must still be running when the test kills it.
            return (Kill(kind, str(rng.randint(1, self.last_step // LOOP - 2))),)
        if kind == "save":  # After a complete checkpoint; or the first best checkpoint's save.
            best = ["best_ckpt-1"] if "best_checkpoint_export_subdir" in self.trainer else []
            return (Kill(kind, rng.choice([str(step) for step in range(2 * LOOP, self.last_step + 1, LOOP)] + best)),)
        return (Kill(kind, str(rng.randint(1, self.last_step // EVAL_EVERY)) + rng.choice(["", ":end"])),)


def _stops(*specs):
    """Task routines: `None` or an early_stopping block per task."""
    return tuple({} if spec is None else {"early_stopping": spec} for spec in specs)


SCENARIOS = (
    # The joint trainer restores ckpt-25 at an epoch boundary (25 * 96 = 3 * 800).
    Scenario("joint_train", "shapes", {}, mode="train", mid_epoch=False),
    # min_delta 1e9: nothing after the first evaluation improves, so circle
    # stops at the 2nd evaluation (step 20) and square at the 3rd (step 30),
    # whatever the metric values. Killed between ckpt-20 and the evaluation at
    # 20, and after the stop at 20 is logged but before a checkpoint holds it.
    Scenario(
        "joint_early_stopping_successive", "shapes", {"successive_regularization": 0.5},
        routines=_stops({"metric": "accuracy", "patience": 1, "min_delta": 1e9},
                        {"metric": "accuracy", "patience": 2, "min_delta": 1e9}, None),
        kills=(Kill("eval", "2"), Kill("save", "25")),
    ),
    Scenario(
        "interleaving_proportional_model_selection", "shapes_interleaving",
        {"task_sampler": {"type": "proportional", "proportional": {"alpha": 0.5}},
         "model_selection": {"method": "mean", "metrics": [f"{t}.accuracy" for t in TASKS], "patience": 2},
         "best_checkpoint_export_subdir": "best"},
        routines=({"task_weight": 1.0}, {"task_weight": 2.0}, {"task_weight": 4.0}),
        last_step=3 * EVAL_EVERY,  # Patience 2 can end the run at the third evaluation.
    ),
    Scenario(
        "interleaving_annealing_early_stopping_successive", "shapes_interleaving",
        {"task_sampler": {"type": "annealing", "annealing": {"steps_per_epoch": 10, "total_steps": STEPS}},
         "successive_regularization": 0.5},
        routines=_stops({"metric": "validation_loss", "mode": "lower", "patience": 1},
                        {"metric": "accuracy", "patience": 1}, None),
    ),
    # The other samplers (uniform, temperature, round_robin) draw statelessly
    # too; test_interleaving_trainer restores each of them in process.
    Scenario("interleaving_epoch_shuffled", "shapes_interleaving",
             {"task_sampler": {"type": "epoch_shuffled", "epoch_shuffled": {"batches_per_epoch": [8, 8, 8]}}}),
)


def _env(**extra):
    return dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _start(scenario, config_file, model_dir, niceness=0, **env):
    """Starts the launcher; uninterrupted runs are niced, so that killed runs and restarts go first."""
    flags = [f"--experiment={scenario.experiment}", f"--mode={scenario.mode}", f"--config_file={config_file}",
             f"--model_dir={model_dir}"]
    return subprocess.Popen(
        ["nice", "-n", str(niceness), sys.executable, os.path.join(HERE, "preemptible_run.py"), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(**env), start_new_session=True,
    )


def _kill(process):
    """SIGKILLs the process group of `process` (started in a session of its own)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # Already ended.
        pass


def _finish(process, kill_after_line: Optional[int] = None) -> Tuple[Optional[int], str]:
    """Waits for `process` (killing its group after the given checkpoint line, or at TIMEOUT)."""
    timer = threading.Timer(TIMEOUT, _kill, (process,))
    timer.start()
    lines, saved = [], set()
    try:
        for line in process.stdout:
            lines.append(line)
            if SAVED in line:  # Printed and logged: count checkpoints, not lines.
                saved.add(line.rsplit(SAVED, 1)[1].strip())
            if kill_after_line is not None and len(saved) == kill_after_line:
                _kill(process)
                kill_after_line = None
        process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            _kill(process)
            process.wait()
    return process.returncode, "".join(lines)


@dataclasses.dataclass
class Run:
    """One finished process: its exit status and output."""

    code: Optional[int]
    output: str

    def tail(self) -> str:
        return self.output[-3000:]


@dataclasses.dataclass
class Resumed:
    """A killed-then-restarted run: both processes, and what the kill left behind."""

    kill: Kill
    model_dir: str
    killed: Run
    restart: Run
    latest_at_kill: Optional[str]
    counters_at_kill: Dict[str, int]
    stops_at_kill: List[str]
    files_at_kill: List[str]


def _launch(scenario, config_file, model_dir, kill_after_line=None, niceness=0, **env) -> Run:
    """Runs the launcher to its end (or its kill) once one of the `PARALLEL` slots is free."""
    with _SLOTS:
        return Run(*_finish(_start(scenario, config_file, model_dir, niceness, **env), kill_after_line))


def _run_whole(scenario, config_file, model_dir) -> Run:
    return _launch(scenario, config_file, model_dir, niceness=10)


def _run_killed(scenario, config_file, model_dir, kill: Kill) -> Resumed:
    killed = _launch(scenario, config_file, model_dir, int(kill.at) if kill.kind == "line" else None, **kill.env())
    latest = tf.train.latest_checkpoint(model_dir)
    counters = {}
    if latest:
        reader = tf.train.load_checkpoint(latest)
        counters = {task: int(reader.get_tensor(f"task_step_counters/{task}/.ATTRIBUTES/VARIABLE_VALUE"))
                    for task in TASKS}
    stops = _lines(os.path.join(model_dir, "early_stopping.json"))
    files = os.listdir(model_dir)
    restart = _launch(scenario, config_file, model_dir)
    return Resumed(kill, model_dir, killed, restart, latest and os.path.basename(latest), counters, stops, files)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """`{scenario name: (uninterrupted Run and its model_dir, [Resumed])}`, run side by side.

    The killed runs queue first: each has its restart to run after it.
    """
    root = tmp_path_factory.mktemp("resume")
    configs = {}
    for scenario in SCENARIOS:
        configs[scenario.name] = str(root / f"{scenario.name}.yaml")
        with open(configs[scenario.name], "w") as stream:
            yaml.safe_dump(scenario.config(), stream)
    jobs = sum(1 + len(s.kill_points()) for s in SCENARIOS)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        killed = {s.name: [pool.submit(_run_killed, s, configs[s.name], str(root / s.name / f"killed{i}"), kill)
                           for i, kill in enumerate(s.kill_points())] for s in SCENARIOS}
        whole = {s.name: pool.submit(_run_whole, s, configs[s.name], str(root / s.name / "whole")) for s in SCENARIOS}
        return {name: ((whole[name].result(), str(root / name / "whole")), [k.result() for k in killed[name]])
                for name in whole}


def _lines(path) -> List[str]:
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        return [line for line in stream.read().splitlines() if line.strip()]


def _tensors(directory, skip=()) -> Dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(directory)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(directory)
            if "OBJECT_GRAPH" not in name and not any(s in name for s in skip)}


def final_state(model_dir) -> dict:
    """What a finished run leaves: checkpoint, metrics, stop log, best checkpoint."""
    state = {
        "latest": os.path.basename(tf.train.latest_checkpoint(model_dir)),
        "tensors": _tensors(model_dir),
        "stops": _lines(os.path.join(model_dir, "early_stopping.json")),
    }
    with open(os.path.join(model_dir, "metrics.json")) as stream:
        state["metrics"] = json.load(stream)
    best = os.path.join(model_dir, "best")
    if os.path.isdir(best):
        with open(os.path.join(best, "info.json")) as stream:
            state["best_info"] = json.load(stream)
        # The exporter's save counter numbers its files and is no model state.
        state["best_tensors"] = _tensors(best, skip=("save_counter",))
    return state


def _assert_same_state(got, want, context):
    assert got["latest"] == want["latest"], context
    assert got["tensors"].keys() == want["tensors"].keys(), context
    for name, value in want["tensors"].items():
        np.testing.assert_array_equal(got["tensors"][name], value, err_msg=f"{context}: {name}")
    assert got["metrics"] == want["metrics"], context
    assert len(set(got["stops"])) == len(got["stops"]), f"{context}: a stop logged twice: {got['stops']}"
    assert got["stops"] == want["stops"], context
    assert got.keys() == want.keys(), context
    if "best_info" in want:
        assert got["best_info"] == want["best_info"], context
        assert got["best_tensors"].keys() == want["best_tensors"].keys(), context
        for name, value in want["best_tensors"].items():
            np.testing.assert_array_equal(got["best_tensors"][name], value, err_msg=f"{context}: best {name}")


def _checkpoint_left_by(kill: Kill) -> Optional[int]:
    """The step of the latest complete checkpoint a kill leaves (None: some step after line K's)."""
    if kill.kind == "eval":  # The checkpoint taken at the evaluation's step.
        return int(kill.at.partition(":")[0]) * EVAL_EVERY
    if kill.kind == "save":  # The one before the torn save; best_ckpt-1 is exported at the 1st evaluation.
        return int(kill.at) - LOOP if kill.at.isdigit() else EVAL_EVERY
    return None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_killed_and_resumed_run_equals_uninterrupted(outcomes, scenario):
    """The restarted run ends as the uninterrupted one. The kill left the
    checkpoint it should (a torn save its data files, but the previous
    checkpoint latest), in the middle of a task's epoch."""
    (whole, whole_dir), resumed = outcomes[scenario.name]
    assert whole.code == 0, whole.tail()
    want = final_state(whole_dir)
    # The runs cross a reshuffled epoch boundary of some task.
    steps = [int(want["tensors"][f"task_step_counters/{t}/.ATTRIBUTES/VARIABLE_VALUE"]) for t in TASKS]
    assert max(steps) * BATCH > TRAIN_POINTS, steps
    for run in resumed:
        context = f"{scenario.name}, killed at {run.kill} (seed {SEED})"
        assert run.killed.code == -signal.SIGKILL, f"{context}: {run.killed.tail()}"
        assert run.latest_at_kill, f"{context}: no complete checkpoint before the kill"
        step = int(run.latest_at_kill.rsplit("-", 1)[1])
        if _checkpoint_left_by(run.kill) is not None:
            assert step == _checkpoint_left_by(run.kill), context
        else:
            assert int(run.kill.at) * LOOP <= step <= STEPS, context
        if run.kill.kind == "save" and run.kill.at.isdigit():
            assert f"ckpt-{run.kill.at}.index" in run.files_at_kill, f"{context}: {run.files_at_kill}"
        if scenario.mid_epoch:
            assert any(count * BATCH % TRAIN_POINTS for count in run.counters_at_kill.values()), (
                f"{context}: {run.counters_at_kill} is at an epoch boundary of every task")
        assert run.restart.code == 0, f"{context}: {run.restart.tail()}"
        _assert_same_state(final_state(run.model_dir), want, context)


def test_early_stopping_killed_around_the_stopping_evaluation(outcomes):
    """Killed between ckpt-20 and the evaluation at 20 that stops circle, and
    after that stop is logged but before a checkpoint holds it (in the save of
    ckpt-25): both resumed runs stop circle at 20 and square at 30, as the
    uninterrupted run does, and log each stop once."""
    (_, whole_dir), (before_eval, after_stop) = outcomes["joint_early_stopping_successive"]
    want = final_state(whole_dir)["stops"]
    assert [(e["task"], e["step"]) for e in map(json.loads, want)] == [("circle", 20), ("square", 30)], want
    assert before_eval.latest_at_kill == "ckpt-20" and before_eval.stops_at_kill == [], before_eval.killed.tail()
    assert after_stop.latest_at_kill == "ckpt-20", after_stop.killed.tail()
    assert after_stop.stops_at_kill == want[:1]
    for run in (before_eval, after_stop):
        assert _lines(os.path.join(run.model_dir, "early_stopping.json")) == want, run.kill
