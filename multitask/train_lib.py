"""Runs an experiment: builds the trainer and evaluator, then the orbit loop.

`run_experiment` runs a multi-task experiment (or a single Task, which trains
alone through the same machinery); `run_experiment_with_multitask_eval` trains
one task and evaluates several. Both resume from the latest checkpoint in
`model_dir`, write summaries to `model_dir/train` and `model_dir/validation`,
and keep checkpoints with `trainer.max_to_keep` / `trainer.checkpoint_interval`.
Mode `eval` evaluates the latest checkpoint and refuses a model_dir without
one; `continuous_eval` evaluates each new checkpoint until the one of
`train_steps`, or until none came for `trainer.continuous_eval_timeout`
seconds. Both restore only what evaluation needs.

What a resumed run guarantees. A run restarted with the same config and
model_dir (after a crash, a SIGKILL, or a preemption in the middle of a save)
restores the latest complete checkpoint: model, optimizer (slots and
iterations), global step, per-task step counters, the weighting's state and
the count of non-finite steps. A save interrupted before it finished leaves
its files behind, but the checkpoint state file still names the previous
checkpoint, which is the one restored. The steps after that checkpoint are
trained again: each task's training data is re-created and the batches its
counter says were consumed are skipped, and the interleaving trainer's task
draws are a stateless function of `(sampling_seed, global_step)`. So with
deterministic input pipelines (seeded shuffles) and the same strategy and
number of replicas, the resumed run ends with the same variables and metrics
as an uninterrupted one, bit for bit on CPU (tested with SIGKILL mid-run and
mid-save). `train_and_eval` evaluates at the same steps as an uninterrupted
run and keeps early stopping's patience counts, its `early_stopping.json` and
the best checkpoint as that run would (`training.train_and_evaluate`).
Not guaranteed: the same result under another number of replicas,
or with input pipelines whose order depends on timing; summaries of the steps
trained again are written twice. Under MultiWorkerMirroredStrategy only the
chief writes to model_dir; other workers save to a scratch directory and
resume from the chief's checkpoint.
"""
import functools
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from absl import logging
import keras
import orbit
import tensorflow as tf

from multitask import base_model
from multitask import base_trainer
from multitask import configs
from multitask import evaluator as evaluator_lib
from multitask import input_factory
from multitask import interleaving_trainer
from multitask import multitask as multitask_lib
from multitask import task_sampler
from multitask import weighting
from multitask.core import base_task
from multitask.core import checkpoint_exporter
from multitask.training import train_and_evaluate

TRAINERS = {
    "joint": base_trainer.MultiTaskBaseTrainer,
    "interleaving": interleaving_trainer.MultiTaskInterleavingTrainer,
}
MODES = ("train", "eval", "train_and_eval", "continuous_eval")

Model = Union[keras.Model, base_model.MultiTaskBaseModel]


def check_mode(mode: str) -> None:
    """Raises a ValueError unless `mode` is one of `MODES`."""
    if mode not in MODES:
        raise ValueError(f"mode is {mode!r}; allowed: {', '.join(MODES)}.")


def get_trainer(
    distribution_strategy: tf.distribute.Strategy,
    params,
    task: multitask_lib.MultiTask,
    model: Model,
) -> base_trainer.MultiTaskBaseTrainer:
    """Creates the trainer `params.trainer.trainer_type` names.

    A single-task experiment (params without `trainer_type`) trains through the
    interleaving trainer, which runs the task's own `train_step`.

    Raises:
      ValueError: An unknown trainer or sampler type, or task optimizers that
        cannot work (see `training.task_optimizers`).
    """
    trainer_type = getattr(params.trainer, "trainer_type", "interleaving")
    if trainer_type not in TRAINERS:
        raise ValueError(
            f"trainer.trainer_type is {trainer_type!r}; allowed: {', '.join(TRAINERS)}."
        )
    with distribution_strategy.scope():
        kwargs = dict(
            multi_task=task,
            multi_task_model=model,
            optimizer=task.create_optimizer(params.trainer.optimizer_config, params.runtime),
            on_nonfinite=getattr(params.trainer, "on_nonfinite", "raise"),
            jit_compile=bool(params.runtime.enable_xla),
        )
        shared_data = getattr(params.task, "shared_train_data", None)
        if shared_data is not None:
            kwargs["train_datasets"] = functools.partial(input_factory.build_shared_inputs, shared_data)
        routines = getattr(params.task, "task_routines", ()) or ()
        task_optimizers = {
            r.resolved_name(): task.create_optimizer(r.optimizer_config, params.runtime)
            for r in routines if getattr(r, "optimizer_config", None) is not None
        }
        if task_optimizers:
            kwargs["task_optimizers"] = task_optimizers
        strength = getattr(params.trainer, "successive_regularization", 0.0)
        if strength:
            kwargs["successive_regularization"] = strength
        if trainer_type == "interleaving":
            sampling = getattr(params.trainer, "task_sampler", None)
            kwargs["task_sampler"] = (
                task_sampler.get_task_sampler(sampling, task.sampling_weights)
                if sampling is not None
                else task_sampler.UniformTaskSampler(task.sampling_weights)
            )
        elif params.trainer.weighting.type:
            kwargs["weighting"] = weighting.get_weighting(
                params.trainer.weighting.type, len(task.tasks), **params.trainer.weighting.hyperparameters()
            )
            kwargs["rep_grad"] = params.trainer.rep_grad
        if trainer_type == "joint" and getattr(params.trainer, "shared_learning_rate_multiplier", None) is not None:
            kwargs["shared_learning_rate_multiplier"] = params.trainer.shared_learning_rate_multiplier
        return TRAINERS[trainer_type](**kwargs)


def _init_fn(task: multitask_lib.MultiTask, model: Model):
    """What the checkpoint manager runs when model_dir has no checkpoint."""
    if isinstance(model, base_model.MultiTaskBaseModel):
        return model.initialize
    return lambda: [t.initialize(model) for t in task.tasks.values()]


def _no_checkpoint(model_dir: str) -> None:
    """What mode "eval" does where model_dir has no checkpoint: refuse."""
    raise ValueError(f"mode 'eval': model_dir {model_dir!r} has no checkpoint to evaluate; "
                     "train first, or point --model_dir at a training run.")


def _restore_chief_or_init(checkpoint: tf.train.Checkpoint, model_dir: str, init_fn) -> None:
    """A non-chief worker's start: the chief's latest checkpoint, else `init_fn`."""
    latest = tf.train.latest_checkpoint(model_dir)
    if latest:
        checkpoint.restore(latest)
    else:
        init_fn()


def _run(
    *,
    strategy: tf.distribute.Strategy,
    train_task: multitask_lib.MultiTask,
    eval_tasks,
    eval_steps,
    model: Model,
    mode: str,
    params,
    model_dir: str,
    run_post_eval: bool,
    trainer: Optional[base_trainer.MultiTaskBaseTrainer],
) -> Optional[Dict[str, Dict[str, Any]]]:
    """Builds what `mode` needs and runs it with an orbit Controller.

    Returns:
      The post-eval logs, or None without `run_post_eval`.
    """
    check_mode(mode)
    is_training = "train" in mode
    with strategy.scope():
        if is_training and trainer is None:
            trainer = get_trainer(strategy, params, train_task, model)
        evaluator = None
        if "eval" in mode or run_post_eval:
            evaluator = evaluator_lib.MultiTaskEvaluator(
                eval_tasks=eval_tasks,
                model=model,
                eval_steps=eval_steps,
                global_step=trainer.global_step if is_training else None,
                checkpoint_exporter=checkpoint_exporter.maybe_create_best_ckpt_exporter(params, model_dir),
            )
    if not is_training:
        trainer = None
    record = stopping = None
    if mode == "train_and_eval":
        # Saved with the run: a resumed run keeps its patience counts and
        # knows which evaluations its checkpoint includes.
        record = trainer.checkpoint.evaluation = train_and_evaluate.EvaluationRecord()
        stopping = train_and_evaluate.build_early_stopping(
            params, train_task, model_dir if strategy.extended.should_checkpoint else "")
        if stopping is not None:
            trainer.checkpoint.early_stopping = stopping
    owner = trainer if trainer is not None else evaluator
    checkpoint_dir, max_to_keep = model_dir, params.trainer.max_to_keep
    # continuous_eval waits for the first checkpoint; eval refuses to evaluate an untrained model.
    init_fn = functools.partial(_no_checkpoint, model_dir) if mode == "eval" else _init_fn(train_task, model)
    if not strategy.extended.should_checkpoint:
        # Every worker takes part in a save (reading distributed variables
        # synchronises them), so non-chief workers save to a scratch directory,
        # as in Model Garden, and resume from the chief's latest checkpoint.
        checkpoint_dir, max_to_keep = tempfile.mkdtemp(), 1
        init_fn = functools.partial(_restore_chief_or_init, owner.checkpoint, model_dir, init_fn)
    checkpoint_manager = tf.train.CheckpointManager(
        owner.checkpoint,
        directory=checkpoint_dir,
        max_to_keep=max_to_keep,
        step_counter=owner.global_step,
        checkpoint_interval=params.trainer.checkpoint_interval,
        init_fn=init_fn,
    )
    summaries = strategy.extended.should_save_summary
    controller = orbit.Controller(
        strategy=strategy,
        trainer=trainer,
        evaluator=evaluator,
        global_step=owner.global_step,
        steps_per_loop=params.trainer.steps_per_loop,
        checkpoint_manager=checkpoint_manager,
        summary_dir=os.path.join(model_dir, "train") if summaries else None,
        eval_summary_dir=os.path.join(model_dir, "validation") if summaries else None,
        summary_interval=params.trainer.summary_interval,
    )
    logging.info("Starts to execute mode: %s", mode)
    with strategy.scope():
        if mode == "train":
            controller.train(steps=params.trainer.train_steps)
        elif mode == "train_and_eval":
            train_and_evaluate.train_and_evaluate(
                controller, train_steps=params.trainer.train_steps,
                interval=params.trainer.validation_interval or params.trainer.train_steps,
                eval_steps=params.trainer.validation_steps, record=record, stopping=stopping,
            )
        elif mode == "eval":
            controller.evaluate(steps=params.trainer.validation_steps)
        else:  # continuous_eval
            _evaluate_continuously(controller, model_dir, params.trainer)
        if run_post_eval:
            return evaluator.evaluate(params.trainer.validation_steps)
    return None


def _evaluate_continuously(controller: orbit.Controller, model_dir: str, trainer_config) -> None:
    """Evaluates each new checkpoint of `model_dir` as it appears.

    Ends after evaluating the checkpoint of `trainer_config.train_steps`, or
    when no new checkpoint appeared for `continuous_eval_timeout` seconds
    (None: waits for ever). orbit's `evaluate_continuously` would wait out the
    timeout after the last checkpoint too.
    """
    for path in tf.train.checkpoints_iterator(model_dir, timeout=trainer_config.continuous_eval_timeout):
        controller.restore_checkpoint(path)
        controller.evaluate(steps=trainer_config.validation_steps)
        if int(controller.global_step.numpy()) >= trainer_config.train_steps:
            return
    logging.warning("continuous_eval: no new checkpoint in %s for %s s; stopping.",
                    model_dir, trainer_config.continuous_eval_timeout)


def run_experiment(
    *,
    distribution_strategy: tf.distribute.Strategy,
    task: Union[multitask_lib.MultiTask, base_task.Task],
    model: Model,
    mode: str,
    params,
    model_dir: str,
    run_post_eval: bool = False,
    trainer: Optional[base_trainer.MultiTaskBaseTrainer] = None,
) -> Union[Model, Tuple[Model, Dict[str, Dict[str, Any]]]]:
    """Runs train / eval as `params` say.

    Args:
      distribution_strategy: The strategy to run under.
      task: A MultiTask, or a single Task (trained alone, by its own train_step).
      model: The MultiTaskBaseModel, or one keras.Model (e.g. a single task's).
      mode: "train", "eval", "train_and_eval" or "continuous_eval".
      params: A `MultiTaskExperimentConfig` (or a single-task `ExperimentConfig`).
      model_dir: Where checkpoints and summaries go; a run resumes from it.
      run_post_eval: Evaluate once more at the end and return the logs.
      trainer: A ready trainer; by default one is made from `params`.

    Returns:
      The model, and with `run_post_eval` also `{task: {metric: value}}`.

    Raises:
      ValueError: An unknown mode, trainer or sampler type.
      KeyError: A task has no sub-model in `model`.
    """
    multi_task = multitask_lib.as_multi_task(task)
    logs = _run(
        strategy=distribution_strategy, train_task=multi_task, eval_tasks=multi_task.tasks,
        eval_steps=multi_task.task_eval_steps, model=model, mode=mode, params=params,
        model_dir=model_dir, run_post_eval=run_post_eval, trainer=trainer,
    )
    return (model, logs) if run_post_eval else model


def run_experiment_with_multitask_eval(
    *,
    distribution_strategy: tf.distribute.Strategy,
    train_task: base_task.Task,
    eval_tasks: Union[List[base_task.Task], Mapping[str, base_task.Task]],
    mode: str,
    params: configs.MultiEvalExperimentConfig,
    model_dir: str,
    run_post_eval: bool = False,
    trainer: Optional[base_trainer.MultiTaskBaseTrainer] = None,
) -> Tuple[keras.Model, Dict[str, Dict[str, Any]]]:
    """Trains `train_task`'s model and evaluates it on every task of `eval_tasks`.

    Args:
      distribution_strategy: The strategy to run under.
      train_task: The task that trains (by its own train_step).
      eval_tasks: Tasks whose validation data and metrics evaluate the model.
      mode: "train", "eval", "train_and_eval" or "continuous_eval".
      params: A `MultiEvalExperimentConfig`.
      model_dir: Where checkpoints and summaries go.
      run_post_eval: Evaluate once more at the end and return the logs.
      trainer: A ready trainer; by default one is made from `params`.

    Returns:
      `(model, logs)`; logs are `{}` without `run_post_eval`.
    """
    with distribution_strategy.scope():
        model = trainer.multi_task_model if trainer is not None else train_task.build_model()
    logs = _run(
        strategy=distribution_strategy, train_task=multitask_lib.as_multi_task(train_task),
        eval_tasks=eval_tasks, eval_steps={r.resolved_name(): r.eval_steps for r in params.eval_tasks},
        model=model, mode=mode, params=params, model_dir=model_dir, run_post_eval=run_post_eval,
        trainer=trainer,
    )
    return model, logs or {}
