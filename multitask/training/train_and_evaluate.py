"""Train-and-evaluate that resumes exactly: evaluations at fixed steps, early stopping.

orbit's `Controller.train_and_evaluate` evaluates every `interval` steps
counted from wherever the run (re)started, and a checkpoint taken at an
evaluation step is written before that evaluation. A run killed between the two
would, once resumed, skip the evaluation its checkpoint was taken for, and
then evaluate at other steps than an uninterrupted run: it would stop later,
export another best checkpoint, or log an early stop twice.

Here evaluations fall on the multiples of `interval` (and on `train_steps`)
whenever the run started, and `EvaluationRecord`, saved in the checkpoint,
holds the step of the last evaluation whose outcome the checkpoint includes.
A resumed run whose checkpoint was taken for an evaluation it does not record
runs that evaluation first; the stop events it logged in the lost stretch are
dropped from `early_stopping.json` before they are logged again. A run that
ended early stays ended when it is started again.
"""
from typing import Optional

from absl import logging
import tensorflow as tf

from multitask import model_selection


class EvaluationRecord(tf.Module):
    """The last evaluation a checkpoint includes, and whether it ended the run."""

    def __init__(self):
        super().__init__(name="evaluation")
        self.step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="step")
        self.ended = tf.Variable(False, trainable=False, name="ended")


class EarlyStopping(tf.Module):
    """Per-task early stopping and the run-level patience on the aggregate score."""

    def __init__(self, tasks: Optional[model_selection.TaskEarlyStopping], selector,
                 run_tracker: Optional[model_selection.PatienceTracker]):
        super().__init__(name="early_stopping")
        self.tasks = tasks
        self.run = run_tracker
        self._selector = selector

    def update(self, eval_logs, step: int) -> bool:
        """Feeds one evaluation; returns True when training should end."""
        if self.tasks is not None:
            self.tasks.update(eval_logs, step)
            if self.tasks.all_stopped:
                logging.info("Early stopping: every task has stopped at step %d.", step)
                return True
        if self.run is not None and self.run.update(self._selector.score(eval_logs)):
            logging.info("Early stopping: the %s score stopped improving at step %d.", self._selector.name, step)
            return True
        return False


def build_early_stopping(params, multi_task, log_dir: str) -> Optional[EarlyStopping]:
    """The early stopping `params` ask for (per task and/or run-level), or None.

    Args:
      params: The experiment config.
      multi_task: The `MultiTask` whose tasks stop.
      log_dir: Where `early_stopping.json` goes; "" for nowhere.
    """
    routines = getattr(params.task, "task_routines", ()) or ()
    per_task = {r.resolved_name(): r.early_stopping for r in routines
                if getattr(r, "early_stopping", None) is not None and r.early_stopping.metric}
    tasks = model_selection.TaskEarlyStopping(multi_task, per_task, log_dir) if per_task else None
    config = getattr(params.trainer, "model_selection", None)
    run = selector = None
    if config is not None and config.method and config.patience:
        selector = model_selection.build_selector(config)
        mode = "higher" if selector.name == "delta_m" else params.trainer.best_checkpoint_metric_comp
        run = model_selection.PatienceTracker(mode, config.patience, config.min_delta, name="run")
    if tasks is None and run is None:
        return None
    return EarlyStopping(tasks, selector, run)


def train_and_evaluate(controller, *, train_steps: int, interval: int, eval_steps: int,
                       record: EvaluationRecord, stopping: Optional[EarlyStopping] = None) -> None:
    """Trains to `train_steps`, evaluating at each multiple of `interval` and at the end.

    Args:
      controller: The orbit Controller, with the trainer's checkpoint already
        restored (`record` and `stopping` must be items of that checkpoint).
      train_steps: The last step.
      interval: Steps between evaluations (`trainer.validation_interval`).
      eval_steps: Steps per evaluation; -1 for whole datasets.
      record: The run's `EvaluationRecord`.
      stopping: Early stopping, or None.
    """
    step = int(controller.global_step.numpy())
    if bool(record.ended.numpy()):
        logging.info("The run ended early at step %d; nothing left to train.", int(record.step.numpy()))
        return
    if stopping is not None and stopping.tasks is not None:
        stopping.tasks.forget_events_after(int(record.step.numpy()))

    def evaluate() -> bool:
        logs = controller.evaluate(steps=eval_steps)
        ended = stopping is not None and stopping.update(logs, step)
        record.step.assign(step)
        record.ended.assign(ended)
        return ended

    due = step > 0 and (step % interval == 0 or step == train_steps)
    if due and int(record.step.numpy()) < step and evaluate():
        controller.save_checkpoint()
        return
    while step < train_steps:
        step = min(train_steps, (step // interval + 1) * interval)
        controller.train(steps=step, checkpoint_at_completion=False)
        if evaluate():
            break
    controller.save_checkpoint()
