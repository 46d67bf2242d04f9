"""Trainer overhead: examples/s of our trainers against a hand-written loop and Model Garden's.

    python -m benchmarks.trainer_overhead [--sizes small large] [--steps 100] [--repeats 7]
        [--jit] [--out trainer_overhead.json] [--results_dir benchmarks/results]

All runners live in this one process and are timed in turn; its sibling
`benchmarks.trainer_overhead_per_process` runs each runner in a fresh process
of its own instead, the way a user runs one job, on the same workload (it
imports the runners from here).

Workload (issue 7): three tasks, each with its own synthetic in-memory data
(features of dim 64, batch 256 per task, 8 batches cached and repeated):
`classes` (10-class softmax cross-entropy), `binary` (sigmoid cross-entropy)
and `regression` (mean squared error). A shared ReLU MLP encoder, 64 -> 512 ->
512 (`small`) or 64 -> 1024 -> 1024 -> 1024 (`large`), feeds one head per task
(-> 128 ReLU -> out); Adam 1e-3; no metrics besides the per-task training loss.

Two schedules, each run by three implementations of the same computation:

- joint: every step reads one batch of each task, sums the three losses and
  makes one Adam step on all variables (768 examples per step);
  interleaving: every step draws a task uniformly (stateless RNG seeded by the
  step) and makes one Adam step on that task's sub-model (256 examples).
- `ours`: `multitask.base_trainer.MultiTaskBaseTrainer` /
  `multitask.interleaving_trainer.MultiTaskInterleavingTrainer` (Keras 3)
  with the optimizer our factory builds for `type: adam`
  (`multitask.core.fused_adam.FusedAdam`); `ours keras-adam` is the same
  trainer with `keras.optimizers.Adam`, the loop's optimizer, so its ratio to
  the loop is the trainer's own overhead (non-finite guard, step counter,
  task control); `ours xla` adds `jit_compile=True` to `ours` with `--jit`;
  `keras3 loop`: a hand-written Keras 3 `tf.function` loop (`tf.range` over
  steps, one `GradientTape`, `keras.optimizers.Adam.apply`, per-task loss
  means);
  `model garden`: `official.modeling.multitask`'s own trainers with tf_keras
  Tasks and models (the peer: it is what a Model Garden user runs today).

All three use the same loss function (raw TF ops), the same datasets and the
default strategy. (`ours_shared_input` is a third variant used by the
per-process benchmark: one dataset labelled for all three tasks, an
`EncoderHeadsModel`, plain or with a gradient method and `rep_grad`.)

Every runner is built and traced first; each round then times `--steps`
steps of every runner in turn, the order rotated by one runner each round
(`timing.interleaved_round_measures`), in wall time and in this process's
CPU time (user + system, all threads). The tables show each runner's median
examples per second and per CPU-second over `--repeats` rounds, and our
trainers' speed relative to the two references: the median over rounds of
the ratio within a round (`timing.paired_speedup`), which cancels the
machine's slow and fast phases that shift whole rounds. Each timed call is
one `train()` (one orbit loop of `--steps` steps), so a trainer's per-call
bookkeeping (about 2 ms on CPU: metric resets, reading the losses back)
weighs less the more steps a call runs; 100 is what an orbit
`steps_per_loop` typically is. (With `--jit`, an interleaving trainer
compiles a task's step the first time that task is sampled: keep `--steps`
large enough that the untimed first call samples every task.) The peak RSS
printed at the end is that of the whole process (`python -m benchmarks.run`
runs each size in its own process, so there it is per workload).

Each run writes its tables and JSON (command, machine, versions, commit)
to `--results_dir` as `<--name>-<date>.{md,json}` (`benchmarks.record`).
"""
import argparse
import functools
import json
import os
import statistics
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from official.core import base_task as mg_base_task  # noqa: E402
from official.core import config_definitions as cfg  # noqa: E402
from official.modeling.multitask import base_model as mg_base_model  # noqa: E402
from official.modeling.multitask import base_trainer as mg_base_trainer  # noqa: E402
from official.modeling.multitask import interleaving_trainer as mg_interleaving_trainer  # noqa: E402
from official.modeling.multitask import multitask as mg_multitask  # noqa: E402
from official.modeling.multitask import task_sampler as mg_task_sampler  # noqa: E402

from benchmarks import record  # noqa: E402
from benchmarks import timing  # noqa: E402
from multitask import base_model  # noqa: E402
from multitask import base_trainer  # noqa: E402
from multitask import interleaving_trainer  # noqa: E402
from multitask import multitask  # noqa: E402
from multitask import task_sampler  # noqa: E402
from multitask import weighting  # noqa: E402
from multitask.core import base_task  # noqa: E402
from multitask.core import fused_adam  # noqa: E402

FEATURES = 64
BATCH = 256
HEAD_WIDTH = 128
LEARNING_RATE = 1e-3
# Batches of synthetic data per task, cached and repeated.
NUM_BATCHES = 8
# Task name -> (loss kind, output width).
TASKS = {"classes": ("softmax", 10), "binary": ("sigmoid", 1), "regression": ("mse", 1)}
# Encoder widths of each workload.
SIZES = {"small": (512, 512), "large": (1024, 1024, 1024)}
SCHEDULES = ("joint", "interleaving")
OURS, OURS_KERAS_ADAM, OURS_XLA = "ours", "ours keras-adam", "ours xla"
OURS_RUNNERS = (OURS, OURS_KERAS_ADAM, OURS_XLA)
LOOP, MODEL_GARDEN = "keras3 loop", "model garden"


def task_loss(name: str, labels, outputs) -> tf.Tensor:
    """The mean loss of task `name` on one batch (shared by every implementation)."""
    kind = TASKS[name][0]
    if kind == "softmax":
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=outputs))
    if kind == "sigmoid":
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=outputs))
    return tf.reduce_mean(tf.math.squared_difference(outputs, labels))


def _labels(rng, name: str, size: int) -> np.ndarray:
    kind, width = TASKS[name]
    if kind == "softmax":
        return rng.integers(0, width, size).astype(np.int32)
    if kind == "sigmoid":
        return rng.integers(0, 2, (size, 1)).astype(np.float32)
    return rng.standard_normal((size, 1)).astype(np.float32)


def _cached(features, labels) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    return dataset.batch(BATCH, drop_remainder=True).cache().repeat().prefetch(tf.data.AUTOTUNE)


def synthetic_dataset(name: str) -> tf.data.Dataset:
    """Endless batches of task `name`: `NUM_BATCHES` random batches, cached and repeated."""
    rng = np.random.default_rng(list(TASKS).index(name))
    features = rng.standard_normal((NUM_BATCHES * BATCH, FEATURES)).astype(np.float32)
    return _cached(features, _labels(rng, name, NUM_BATCHES * BATCH))


def shared_dataset() -> tf.data.Dataset:
    """Endless batches of `(features, {task: labels})`: one input labelled for every task."""
    rng = np.random.default_rng(len(TASKS))
    features = rng.standard_normal((NUM_BATCHES * BATCH, FEATURES)).astype(np.float32)
    return _cached(features, {name: _labels(rng, name, NUM_BATCHES * BATCH) for name in TASKS})


# Keras 3: our trainers and the hand-written loops.


class SyntheticTask(base_task.Task):
    """One synthetic task for our trainers (Keras 3 `Task`)."""

    def build_inputs(self, params, input_context=None):
        del params, input_context
        return synthetic_dataset(self.name)

    def build_losses(self, labels, model_outputs, aux_losses=None):
        del aux_losses
        return task_loss(self.name, labels, model_outputs)


def _encoder_and_heads(widths):
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [keras.Input((FEATURES,))] + [keras.layers.Dense(w, activation="relu") for w in widths], name="encoder")
    heads = {
        name: keras.Sequential([keras.Input((widths[-1],)), keras.layers.Dense(HEAD_WIDTH, activation="relu"),
                                keras.layers.Dense(width)], name=f"{name}_head")
        for name, (_, width) in TASKS.items()
    }
    return encoder, heads


class SharedMLP(base_model.MultiTaskBaseModel):
    """The Keras 3 model: one `EncoderHead` per task over one shared MLP encoder."""

    def __init__(self, widths, **kwargs):
        self.encoder, self.heads = _encoder_and_heads(widths)
        super().__init__(**kwargs)

    def _instantiate_sub_tasks(self):
        return {name: base_model.EncoderHead(self.encoder, head, name=name) for name, head in self.heads.items()}


def keras_multi_task() -> multitask.MultiTask:
    return multitask.MultiTask([SyntheticTask(cfg.TaskConfig(name=name)) for name in TASKS])


class KerasLoop:
    """A hand-written Keras 3 training loop: what a user would write without a framework.

    `train(steps)` runs `steps` steps in one `tf.function` (`tf.range` loop),
    each a joint step (all tasks, one gradient step on the summed loss) or an
    interleaving step (one task drawn uniformly with a stateless RNG seeded by
    the step, as the trainers do, and one gradient step on its sub-model).
    """

    def __init__(self, widths, schedule: str):
        self._sub_models = dict(SharedMLP(widths).sub_tasks)
        self._variables = base_model.unique_variables(m.trainable_variables for m in self._sub_models.values())
        self._optimizer = keras.optimizers.Adam(LEARNING_RATE)
        self._optimizer.build(self._variables)
        self._iterators = {name: iter(synthetic_dataset(name)) for name in TASKS}
        self._losses = {name: keras.metrics.Mean() for name in TASKS}
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._loop = tf.function(self._joint_loop if schedule == "joint" else self._interleaving_loop)

    def _joint_loop(self, steps):
        for _ in tf.range(steps):
            batches = {name: next(iterator) for name, iterator in self._iterators.items()}
            with tf.GradientTape() as tape:
                losses = {name: task_loss(name, labels, self._sub_models[name](features, training=True))
                          for name, (features, labels) in batches.items()}
                total = tf.add_n(list(losses.values()))
            self._optimizer.apply(tape.gradient(total, self._variables), self._variables)
            for name, loss in losses.items():
                self._losses[name].update_state(loss)
            self._step.assign_add(1)

    def _task_step(self, name):
        features, labels = next(self._iterators[name])
        model = self._sub_models[name]
        with tf.GradientTape() as tape:
            loss = task_loss(name, labels, model(features, training=True))
        self._optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        self._losses[name].update_state(loss)
        return loss

    def _interleaving_loop(self, steps):
        branches = [functools.partial(self._task_step, name) for name in TASKS]
        for _ in tf.range(steps):
            draw = tf.random.stateless_uniform([], seed=tf.stack([tf.constant(0, tf.int64), self._step]))
            index = tf.minimum(tf.cast(draw * len(TASKS), tf.int32), len(TASKS) - 1)
            tf.switch_case(index, branches)
            self._step.assign_add(1)

    def train(self, steps):
        for metric in self._losses.values():
            metric.reset_state()
        self._loop(steps)
        return {name: float(metric.result()) for name, metric in self._losses.items()}


def ours(widths, schedule: str, jit_compile: bool = False, optimizer_class=fused_adam.FusedAdam):
    """Our joint or interleaving trainer on the workload."""
    datasets = {name: synthetic_dataset(name) for name in TASKS}
    args = (keras_multi_task(), SharedMLP(widths), optimizer_class(LEARNING_RATE))
    if schedule == "joint":
        return base_trainer.MultiTaskBaseTrainer(*args, train_datasets=datasets, jit_compile=jit_compile)
    return interleaving_trainer.MultiTaskInterleavingTrainer(
        *args, task_sampler.UniformTaskSampler({name: 1.0 for name in TASKS}),
        train_datasets=datasets, jit_compile=jit_compile)


def ours_shared_input(widths, method: Optional[str] = None):
    """Our joint trainer on one shared input (`shared_dataset`), plain or balanced by `method` with rep_grad.

    The model is an `EncoderHeadsModel` over the same encoder and heads, so the
    encoder runs once per step; with `method` the trainer takes each task's
    gradient with respect to the encoder's output (`rep_grad`), lets the
    method combine them and backpropagates the result through the encoder.
    """
    encoder, heads = _encoder_and_heads(widths)
    return base_trainer.MultiTaskBaseTrainer(
        keras_multi_task(), base_model.EncoderHeadsModel(encoder, heads), fused_adam.FusedAdam(LEARNING_RATE),
        train_datasets=shared_dataset(),
        weighting=weighting.get_weighting(method, len(TASKS)) if method else None, rep_grad=method is not None)


# tf_keras: Model Garden's own trainers (the peer, only here).


class ModelGardenTask(mg_base_task.Task):
    """The same synthetic task as a Model Garden (tf_keras) `Task`."""

    def build_inputs(self, params, input_context=None):
        del params, input_context
        return synthetic_dataset(self.name)

    def build_losses(self, labels, model_outputs, aux_losses=None):
        loss = task_loss(self.name, labels, model_outputs)
        return loss + tf.add_n(aux_losses) if aux_losses else loss


class ModelGardenSharedMLP(mg_base_model.MultiTaskBaseModel):
    """The same model in tf_keras: one Sequential per task over the shared encoder."""

    def __init__(self, widths, **kwargs):
        tf_keras.utils.set_random_seed(0)
        self.encoder = tf_keras.Sequential(
            [tf_keras.Input((FEATURES,))] + [tf_keras.layers.Dense(w, activation="relu") for w in widths],
            name="encoder")
        super().__init__(**kwargs)

    def _instantiate_sub_tasks(self):
        return {
            name: tf_keras.Sequential([tf_keras.Input((FEATURES,)), self.encoder,
                                       tf_keras.layers.Dense(HEAD_WIDTH, activation="relu"),
                                       tf_keras.layers.Dense(width)], name=name)
            for name, (_, width) in TASKS.items()
        }


class _UntrackedDict(dict):
    """A dict that `tf.Module` attribute tracking stores as is (see `multitask.base_trainer`)."""


def model_garden(widths, schedule: str):
    """Model Garden's joint or interleaving trainer on the workload (tasks build their own data).

    As released, both fail at their first `train()` under Python 3.11 and
    TF 2.20: orbit stores the `{task: dataset}` dict (and then the dict of
    iterators) as a `tf.Module` attribute, which wraps it in a `_DictWrapper`
    that `tf.function` refuses as an argument ("this __dict__ descriptor does
    not support '_DictWrapper' objects"). Re-setting `train_dataset` to a dict
    subclass, which tracking leaves alone, is the whole workaround.
    """
    tasks = mg_multitask.MultiTask([ModelGardenTask(cfg.TaskConfig(name=name), name=name) for name in TASKS])
    model = ModelGardenSharedMLP(widths)
    optimizer = tf_keras.optimizers.Adam(LEARNING_RATE)
    if schedule == "joint":
        trainer = mg_base_trainer.MultiTaskBaseTrainer(tasks, model, optimizer)
    else:
        trainer = mg_interleaving_trainer.MultiTaskInterleavingTrainer(
            tasks, model, optimizer, mg_task_sampler.UniformTaskSampler({name: 1.0 for name in TASKS}))
    trainer.train_dataset = _UntrackedDict(trainer.train_dataset)
    return trainer


def examples_per_step(schedule: str) -> int:
    """Examples one step trains on (a shared-input step reads one batch labelled for every task)."""
    return BATCH * (len(TASKS) if schedule == "joint" else 1)


def builders(widths, jit: bool = False):
    """`{runner name: fn(schedule) -> trainer}` of the in-process comparison."""
    found = {LOOP: lambda s: KerasLoop(widths, s), OURS: lambda s: ours(widths, s),
             OURS_KERAS_ADAM: lambda s: ours(widths, s, optimizer_class=keras.optimizers.Adam),
             MODEL_GARDEN: lambda s: model_garden(widths, s)}
    if jit:
        found[OURS_XLA] = lambda s: ours(widths, s, jit_compile=True)
    return found


def rows_from_times(size: str, wall, cpu):
    """Table rows from `{(schedule, runner): [seconds per step per round]}` of wall and CPU time."""
    rows = []
    for (schedule, name), rounds in wall.items():
        seconds, cpu_seconds = statistics.median(rounds), statistics.median(cpu[(schedule, name)])
        row = {"size": size, "schedule": schedule, "runner": name, "seconds_per_step": seconds,
               "examples_per_second": examples_per_step(schedule) / seconds,
               "examples_per_cpu_second": examples_per_step(schedule) / cpu_seconds,
               "seconds_per_step_rounds": rounds, "cpu_seconds_per_step_rounds": cpu[(schedule, name)]}
        if name in OURS_RUNNERS:
            row["speedup"] = {ref: timing.paired_speedup(wall, (schedule, name), (schedule, ref))
                              for ref in (LOOP, MODEL_GARDEN)}
            row["cpu_speedup"] = {ref: timing.paired_speedup(cpu, (schedule, name), (schedule, ref))
                                  for ref in (LOOP, MODEL_GARDEN)}
        rows.append(row)
    return rows


def run_size(size: str, steps: int, repeats: int, jit: bool = False):
    """Times every runner of one workload size, all in this process.

    Returns:
      Rows `{"size", "schedule", "runner", "seconds_per_step", "examples_per_second",
      "examples_per_cpu_second", ...}`; our runners' rows also have "speedup"
      and "cpu_speedup": `{reference: median within-round ratio}`.
    """
    runners = {(schedule, name): build(schedule)
               for schedule in SCHEDULES for name, build in builders(SIZES[size], jit).items()}
    wall, cpu = timing.interleaved_round_measures(runners, steps, repeats, rotate=True)
    return rows_from_times(size, wall, cpu)


def markdown(rows) -> str:
    """Examples per second and per CPU-second of each runner, and our trainers' within-round ratios."""
    runners = list(dict.fromkeys(row["runner"] for row in rows))
    table = {(row["size"], row["schedule"], row["runner"]): row for row in rows}
    keys = list(dict.fromkeys((row["size"], row["schedule"]) for row in rows))
    def per_runner(field):
        return record.markdown_table(
            ["size", "schedule"] + runners,
            [[size, schedule] + [f"{table[(size, schedule, r)][field]:.0f}" for r in runners]
             for size, schedule in keys],
            "ll" + "r" * len(runners))

    out = ["Examples per second of wall time (median over rounds):", "", per_runner("examples_per_second"),
           "Examples per CPU-second (process user + system time over the timed calls; median over rounds):", "",
           per_runner("examples_per_cpu_second"),
           "Our trainers against the references: median over rounds of the within-round speed ratio, "
           "by wall time and by CPU time:", ""]
    ratio_rows = []
    for size, schedule in keys:
        for name in OURS_RUNNERS:
            row = table.get((size, schedule, name))
            if row is None:
                continue
            ratio_rows.append([size, schedule, name] + [f"{row[kind][ref]:.3f}" for kind in ("speedup", "cpu_speedup")
                                                        for ref in (LOOP, MODEL_GARDEN)])
    out.append(record.markdown_table(["size", "schedule", "runner", "/ loop (wall)", "/ MG (wall)", "/ loop (CPU)",
                                      "/ MG (CPU)"], ratio_rows, "lll" + "r" * 4))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--steps", type=int, default=100, help="steps per timed train() call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--jit", action="store_true", help="also time our trainers with jit_compile=True")
    parser.add_argument("--out", default="trainer_overhead.json")
    parser.add_argument("--name", default="trainer_overhead", help="file name stem of the recorded results")
    parser.add_argument("--results_dir", default=str(record.RESULTS_DIR),
                        help="where the table and JSON are recorded; empty: record nothing")
    args = parser.parse_args()
    env = record.environment()
    rows = [row for size in args.sizes for row in run_size(size, args.steps, args.repeats, args.jit)]
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    peak = timing.peak_rss_mib()
    body = (f"3 tasks x batch {BATCH}, {args.steps} steps per timed `train()` x {args.repeats} rounds (runner order "
            f"rotated each round), all runners in one process, device {device}; peak RSS {peak:.0f} MiB.\n\n"
            + markdown(rows))
    print("\n" + body)
    results = {"batch_per_task": BATCH, "steps": args.steps, "repeats": args.repeats, "device": device,
               "peak_rss_mib": peak, "rows": rows}
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=2)
    print(f"\nWrote {args.out}")
    if args.results_dir:
        paths = record.write(args.name, "Trainer overhead, all runners in one process", body, results, env,
                             args.results_dir)
        print("Recorded " + " and ".join(str(path) for path in paths))


if __name__ == "__main__":
    main()
