"""Checks of a resolved config against what its run will meet, before anything is written.

A config can be well-formed (`validate()` passes) and still fail once the
run is under way: a metric name the evaluation never reports (a KeyError
after the first evaluation, when checkpoints and params.yaml exist), an
`init_checkpoint` that is not there, intervals orbit's Controller refuses,
or `--mode=eval` on a model_dir without a checkpoint. Each check here raises
a `ValueError` of one line naming the field, its value and what is allowed;
the launcher (`multitask.train`) runs them before it writes anything:

- `check_trainer`: orbit's constraints on `trainer.steps_per_loop`,
  `summary_interval` (a multiple of steps_per_loop) and `validation_steps`;
  the step counts and intervals of training are >= 1;
  `best_checkpoint_metric_comp` is "higher" or "lower".
- `check_optimizers`: the optimizer, learning rate and warmup types of
  `trainer.optimizer_config` and of each routine's `optimizer_config` are
  ones this library builds with Keras 3.
- `check_task_sampler`: the interleaving trainer's sampler takes the
  run's tasks (one entry per task in its per-task lists).
- `check_checkpoints`: `--mode=eval` needs a checkpoint in model_dir; an
  `init_checkpoint` that a training run will read must exist.
- `check_metric_names`: `trainer.best_checkpoint_eval_metric`,
  `trainer.model_selection.metrics` and each routine's
  `early_stopping.metric` against the keys the evaluator reports.
"""
from typing import Dict, Iterable, List, Optional, Tuple

import tensorflow as tf

from multitask.core import base_task
from multitask.core import checkpoint_exporter
from multitask import task_sampler
from multitask.core import optimization

TRAIN_MODES = ("train", "train_and_eval")


def check_trainer(trainer, mode: str) -> None:
    """Checks the intervals orbit's Controller requires for `mode`, and the best-checkpoint comparison.

    Raises:
      ValueError: In a training mode, `steps_per_loop`, `train_steps`,
        `checkpoint_interval`, `max_to_keep` (and in train_and_eval
        `validation_interval`) < 1, or a `summary_interval` that is not a
        positive multiple of `steps_per_loop`; in a mode
        that evaluates, `validation_steps` neither > 0 nor -1; an unknown
        `best_checkpoint_metric_comp`.
    """
    if trainer.best_checkpoint_metric_comp not in checkpoint_exporter.METRIC_COMPARISONS:
        raise ValueError(f"trainer.best_checkpoint_metric_comp is {trainer.best_checkpoint_metric_comp!r}; "
                         f"allowed: {', '.join(checkpoint_exporter.METRIC_COMPARISONS)}.")
    if mode in TRAIN_MODES:
        per_loop = trainer.steps_per_loop
        if per_loop < 1:
            raise ValueError(f"trainer.steps_per_loop is {per_loop}; it must be >= 1.")
        positive = {"train_steps": trainer.train_steps, "checkpoint_interval": trainer.checkpoint_interval,
                    "max_to_keep": trainer.max_to_keep}
        if mode == "train_and_eval":
            positive["validation_interval"] = trainer.validation_interval
        for field, value in positive.items():
            if value is not None and value < 1:
                raise ValueError(f"trainer.{field} is {value}; it must be >= 1.")
        interval = trainer.summary_interval
        if interval is not None and (interval <= 0 or interval % per_loop):
            nearest = per_loop * max(1, round(interval / per_loop))
            raise ValueError(f"trainer.summary_interval is {interval}; it must be a positive multiple of "
                             f"trainer.steps_per_loop ({per_loop}), e.g. {nearest}.")
    if "eval" in mode and trainer.validation_steps != -1 and trainer.validation_steps <= 0:
        raise ValueError(f"trainer.validation_steps is {trainer.validation_steps}; it must be > 0, or -1 for "
                         "each task's whole validation set.")


def check_optimizers(params, mode: str) -> None:
    """Checks the types of every optimizer config a training run builds (see `optimization.OptimizerFactory`).

    Nothing is built: the strategy a run trains under may not exist yet.

    Raises:
      ValueError: In a training mode, an optimizer, learning rate or warmup
        type Keras 3 has no builder for here, or `ema` set.
    """
    if mode not in TRAIN_MODES:
        return
    optimization.OptimizerFactory(params.trainer.optimizer_config)
    for routine in getattr(params.task, "task_routines", None) or ():
        if getattr(routine, "optimizer_config", None) is not None:
            optimization.OptimizerFactory(routine.optimizer_config,
                                          f"task.tasks.{routine.resolved_name()}.optimizer_config")


def check_task_sampler(params, mode: str, multi_task) -> None:
    """Builds the interleaving trainer's task sampler for `multi_task`'s tasks, and drops it.

    Raises:
      ValueError: In a training mode, a per-task list of the sampler's config
        (`batches_per_epoch`, `dataset_sizes`) without one entry per task, or
        an argument the sampler refuses.
    """
    trainer = params.trainer
    if mode in TRAIN_MODES and getattr(trainer, "trainer_type", None) == "interleaving":
        task_sampler.get_task_sampler(trainer.task_sampler, multi_task.sampling_weights)


def _init_checkpoints(params) -> List[Tuple[str, str]]:
    """`(field, path)` of every init_checkpoint that is set."""
    found = [("task.init_checkpoint", getattr(params.task, "init_checkpoint", ""))]
    for routine in getattr(params.task, "task_routines", ()) or ():
        found.append((f"task.tasks.{routine.resolved_name()}.task_config.init_checkpoint",
                      getattr(routine.task_config, "init_checkpoint", "")))
    return [(field, path) for field, path in found if path]


def check_checkpoints(params, mode: str, model_dir: str) -> None:
    """Checks the checkpoints the run will read.

    `--mode=eval` evaluates model_dir's latest checkpoint, so it needs one
    (`continuous_eval` waits for them). A training run that starts in a
    model_dir without a checkpoint warm-starts from each `init_checkpoint`
    that is set (a checkpoint prefix, or a directory whose latest checkpoint
    is read); a run that resumes does not read them, so they are not checked.

    Raises:
      ValueError: No checkpoint to evaluate, or an init_checkpoint that is
        neither a checkpoint nor a directory holding one.
    """
    latest = tf.train.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else None
    if mode == "eval" and latest is None:
        raise ValueError(f"--mode=eval: --model_dir {model_dir!r} has no checkpoint to evaluate; allowed: a "
                         "model_dir a training run wrote checkpoints to (or --mode=continuous_eval, which waits).")
    if mode not in TRAIN_MODES or latest is not None:
        return
    for field, path in _init_checkpoints(params):
        if tf.io.gfile.isdir(path):
            if tf.train.latest_checkpoint(path) is None:
                raise ValueError(f"{field} is {path!r}, a directory without a checkpoint; allowed: a directory "
                                 "holding checkpoints or a checkpoint prefix such as <dir>/ckpt-100.")
        elif not tf.io.gfile.exists(f"{path}.index"):
            raise ValueError(f"{field} is {path!r}, which is no checkpoint; allowed: a checkpoint prefix such as "
                             "<dir>/ckpt-100 (its .index file exists) or a directory holding checkpoints.")


def evaluation_keys(multi_task) -> Dict[str, Optional[List[str]]]:
    """The keys `MultiTaskEvaluator.evaluate` reports for each task.

    "validation_loss" and the names of `build_metrics(training=False)`; None
    for a task that overrides `reduce_aggregated_logs`, whose keys are known
    only after an evaluation.
    """
    keys = {}
    for name, task in multi_task.tasks.items():
        if type(task).reduce_aggregated_logs is not base_task.Task.reduce_aggregated_logs:
            keys[name] = None
        else:
            keys[name] = ["validation_loss"] + [metric.name for metric in task.build_metrics(training=False)]
    return keys


def _check_name(field: str, name: str, keys: Dict[str, Optional[List[str]]], extra: Iterable[str] = (),
                dotted: Optional[str] = None) -> None:
    """Checks one "<task>.<metric>" name (`dotted`: the name as such, where it is written otherwise)."""
    dotted = dotted or name
    task, _, metric = dotted.partition(".")
    if dotted in extra or (task in keys and (keys[task] is None or metric in keys[task])):
        return
    allowed = [f"{t}.{m}" for t, names in keys.items() for m in (names or ["<a key of its evaluation logs>"])]
    hint = " (aggregate.<method> needs trainer.model_selection.method)" if task == "aggregate" and not extra else ""
    raise ValueError(f"{field} is {name!r}; allowed: {', '.join(allowed + list(extra))}{hint}.")


def check_metric_names(params, multi_task) -> None:
    """Checks the metric names the trainer and the routines refer to.

    Args:
      params: The experiment config.
      multi_task: The `MultiTask` the run evaluates.

    Raises:
      ValueError: A name that is not "<task>.<metric>" of the evaluation logs
        (or "aggregate.<method>" for the best checkpoint when
        `trainer.model_selection.method` is set), or an early-stopping
        metric that its task does not report.
    """
    keys = evaluation_keys(multi_task)
    trainer = params.trainer
    selection = getattr(trainer, "model_selection", None)
    aggregate = [f"aggregate.{selection.method}"] if selection is not None and selection.method else []
    if trainer.best_checkpoint_eval_metric:
        name = trainer.best_checkpoint_eval_metric  # Model Garden's "<task>|<metric>" works too.
        _check_name("trainer.best_checkpoint_eval_metric", name, keys, aggregate, dotted=name.replace("|", "."))
    for index, name in enumerate(selection.metrics if selection is not None else ()):
        _check_name(f"trainer.model_selection.metrics[{index}]", name, keys)
    for routine in getattr(params.task, "task_routines", ()) or ():
        stopping, name = getattr(routine, "early_stopping", None), routine.resolved_name()
        if stopping is not None and stopping.metric and keys.get(name) and stopping.metric not in keys[name]:
            raise ValueError(f"task.tasks.{name}.early_stopping.metric is {stopping.metric!r}; allowed: "
                             f"{', '.join(keys[name])}.")
