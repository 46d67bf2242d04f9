"""Choosing among evaluations: aggregate scores, patience, per-task early stopping.

- `ModelSelector` turns `{task: {metric: value}}` evaluation logs into one
  score: the mean or weighted mean of chosen per-task metrics, or Δm, the mean
  relative improvement over single-task baselines (Maninis et al. 2019, as in
  LibMTL): `Δm = 1/K Σ_k (-1)^{l_k} (M_k - B_k) / B_k`, `l_k` = 1 where lower
  is better. The best-checkpoint exporter and run-level early stopping read it.
- `PatienceTracker` says when a value has not improved for `patience`
  evaluations; its state is variables, saved in the trainer's checkpoint.
- `TaskEarlyStopping` disables each task whose own validation metric stopped
  improving (`MultiTask.disable_task`); training ends when every task stopped.
"""
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from absl import logging
import tensorflow as tf

METHODS = ("mean", "weighted_mean", "delta_m")
MODES = ("higher", "lower")


def metric_value(eval_logs: Mapping[str, Any], name: str) -> float:
    """The value of `"<task>.<metric>"` in `{task: {metric: value}}` logs.

    Raises:
      KeyError: No such task or metric; the message lists what there is.
    """
    task, _, metric = name.partition(".")
    if task not in eval_logs or metric not in eval_logs[task]:
        available = [f"{t}.{m}" for t, logs in eval_logs.items() if isinstance(logs, Mapping) for m in logs]
        raise KeyError(f"Metric {name!r} is not among the evaluation results: {', '.join(available)}.")
    return float(eval_logs[task][metric])


class ModelSelector:
    """One score from several tasks' evaluation metrics (higher is better for Δm)."""

    def __init__(self, method: str, metrics: Sequence[str], weights: Sequence[float] = (),
                 baselines: Sequence[float] = (), lower_is_better: Sequence[bool] = ()):
        """Creates the selector.

        Args:
          method: One of `METHODS`.
          metrics: `"<task>.<metric>"` names.
          weights: One per metric, for "weighted_mean" (normalised by their sum).
          baselines: One per metric, the single-task values, for "delta_m"; non-zero.
          lower_is_better: One per metric for "delta_m" (default all False).

        Raises:
          ValueError: An unknown method, no metrics, or per-metric lists of the
            wrong length or with bad values.
        """
        field = "trainer.model_selection"
        if method not in METHODS:
            raise ValueError(f"{field}.method is {method!r}; allowed: {', '.join(METHODS)}.")
        metrics = list(metrics)
        if not metrics or any("." not in m for m in metrics):
            raise ValueError(f"{field}.metrics {metrics} must name at least one '<task>.<metric>'.")
        weights, baselines = [float(w) for w in weights], [float(b) for b in baselines]
        lower = [bool(x) for x in lower_is_better] or [False] * len(metrics)
        needs = {"weighted_mean": ("weights", weights), "delta_m": ("baselines", baselines)}
        if method in needs and len(needs[method][1]) != len(metrics):
            label, given = needs[method]
            raise ValueError(f"{field}.{label} needs one value per metric ({len(metrics)}); got {len(given)}.")
        if method == "weighted_mean" and (any(w < 0 for w in weights) or not sum(weights) > 0):
            raise ValueError(f"{field}.weights {weights} must be >= 0 with a positive sum.")
        if method == "delta_m" and any(b == 0 for b in baselines):
            raise ValueError(f"{field}.baselines {baselines} must be non-zero (Δm divides by them).")
        if len(lower) != len(metrics):
            raise ValueError(f"{field}.lower_is_better needs one value per metric ({len(metrics)}).")
        self.method, self.metrics = method, metrics
        self._weights, self._baselines, self._lower = weights, baselines, lower

    @property
    def name(self) -> str:
        return self.method

    def score(self, eval_logs: Mapping[str, Any]) -> float:
        """The aggregate of `eval_logs` (`{task: {metric: value}}`).

        Raises:
          KeyError: A chosen metric is missing from the logs.
        """
        values = [metric_value(eval_logs, name) for name in self.metrics]
        if self.method == "mean":
            return sum(values) / len(values)
        if self.method == "weighted_mean":
            return sum(w * v for w, v in zip(self._weights, values)) / sum(self._weights)
        terms = [(-1.0 if lower else 1.0) * (v - b) / b
                 for v, b, lower in zip(values, self._baselines, self._lower)]
        return sum(terms) / len(terms)


class PatienceTracker(tf.Module):
    """Counts evaluations without improvement; its state is checkpointable variables."""

    def __init__(self, mode: str = "higher", patience: int = 1, min_delta: float = 0.0, name=None):
        """Creates the tracker.

        Args:
          mode: "higher" or "lower": which values are better.
          patience: Evaluations without improvement after which `update` says stop; >= 1.
          min_delta: An improvement must beat the best value by more than this.

        Raises:
          ValueError: A bad mode, patience or min_delta.
        """
        super().__init__(name=name)
        if mode not in MODES:
            raise ValueError(f"early stopping mode is {mode!r}; allowed: {', '.join(MODES)}.")
        if int(patience) < 1:
            raise ValueError(f"early stopping patience is {patience!r}; it must be >= 1.")
        if min_delta < 0:
            raise ValueError(f"early stopping min_delta is {min_delta!r}; it must be >= 0.")
        self._sign = 1.0 if mode == "higher" else -1.0
        self._patience, self._min_delta = int(patience), float(min_delta)
        self.best = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False, name="best")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")

    @property
    def best_value(self) -> float:
        return self._sign * float(self.best.numpy())

    def update(self, value: float) -> bool:
        """Records one evaluation; returns True when patience ran out."""
        signed = self._sign * float(value)
        if signed > float(self.best.numpy()) + self._min_delta:
            self.best.assign(signed)
            self.wait.assign(0)
        else:
            self.wait.assign_add(1)
        return int(self.wait.numpy()) >= self._patience


class _EventLog:
    """A plain list holder: tf.Module would wrap (and try to checkpoint) a list attribute."""

    def __init__(self):
        self.entries: List[Dict[str, Any]] = []


class TaskEarlyStopping(tf.Module):
    """Disables each task whose validation metric stopped improving."""

    def __init__(self, multi_task, configs: Mapping[str, Any], log_dir: str = ""):
        """Creates one tracker per configured task.

        Args:
          multi_task: The `MultiTask` whose tasks are disabled.
          configs: `{task: EarlyStoppingConfig}` (tasks without a metric are skipped).
          log_dir: Where `early_stopping.json` (the stop events) is written; "" for nowhere.

        Raises:
          KeyError: A config for a task that does not exist.
          ValueError: A bad mode, patience or min_delta.
        """
        super().__init__(name="early_stopping")
        unknown = sorted(set(configs) - set(multi_task.tasks))
        if unknown:
            raise KeyError(f"early_stopping for unknown tasks {unknown}; tasks: {', '.join(multi_task.tasks)}.")
        # Bound methods, not the MultiTask: the checkpoint must not track it here.
        self._active_tasks = lambda: multi_task.active_tasks
        self._disable_task = multi_task.disable_task
        self._metrics = {name: c.metric for name, c in configs.items() if c.metric}
        self.trackers = {
            name: PatienceTracker(configs[name].mode, configs[name].patience, configs[name].min_delta, name=name)
            for name in self._metrics
        }
        self._log_path = os.path.join(log_dir, "early_stopping.json") if log_dir else ""
        self._events = _EventLog()

    @property
    def events(self) -> List[Dict[str, Any]]:
        """The stop events so far: `{"step", "task", "metric", "value", "best"}` each."""
        return list(self._events.entries)

    def forget_events_after(self, step: int) -> None:
        """Keeps the stop events of evaluations up to `step`, in memory and in the log file.

        A resumed run calls it with the step of the last evaluation its
        checkpoint includes: the evaluations after it run again and log
        their stops again.
        """
        logged = bool(self._log_path) and tf.io.gfile.exists(self._log_path)
        if logged:
            with tf.io.gfile.GFile(self._log_path) as f:
                self._events.entries = [json.loads(line) for line in f if line.strip()]
        self._events.entries = [e for e in self._events.entries if e["step"] <= step]
        if logged:
            with tf.io.gfile.GFile(self._log_path, "w") as f:
                f.write("".join(json.dumps(event) + "\n" for event in self._events.entries))

    @property
    def tasks(self) -> List[str]:
        """The tasks that stop early."""
        return list(self._metrics)

    def update(self, eval_logs: Mapping[str, Any], step: int) -> List[str]:
        """Feeds one evaluation to the active tasks' trackers; disables those out of patience.

        Returns:
          The tasks stopped by this evaluation.

        Raises:
          KeyError: A task's metric is missing from `eval_logs`.
        """
        stopped = []
        active = set(self._active_tasks())
        for name, metric in self._metrics.items():
            if name not in active:
                continue
            value = metric_value(eval_logs, f"{name}.{metric}")
            if self.trackers[name].update(value):
                self._disable_task(name)
                stopped.append(name)
                event = {"step": int(step), "task": name, "metric": metric, "value": value,
                         "best": self.trackers[name].best_value}
                self._events.entries.append(event)
                logging.info("Early stopping: task %r stopped at step %d (%s = %s, best %s).",
                             name, step, metric, value, event["best"])
        if stopped and self._log_path:
            with tf.io.gfile.GFile(self._log_path, "a") as f:
                for event in self._events.entries[-len(stopped):]:
                    f.write(json.dumps(event) + "\n")
        return stopped

    @property
    def all_stopped(self) -> bool:
        """Whether no task is left to train."""
        return not self._active_tasks()


def build_selector(config) -> Optional[ModelSelector]:
    """A `ModelSelector` from a `configs.ModelSelectionConfig`, or None without a method."""
    if config is None or not config.method:
        return None
    return ModelSelector(config.method, config.metrics, config.weights, config.baselines, config.lower_is_better)
