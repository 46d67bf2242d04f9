"""MultiTaskEvaluator: per-task validation, an orbit AbstractEvaluator.

Sub-models that Keras has not built yet (plain subclassed models without
`inputs`) are built when the evaluator is created, from the spec of their
validation data (`multitask.model_inputs`), so that an evaluation-only job can
restore a checkpoint into them.

"validation_loss" is the mean loss over the examples of the whole evaluation,
not the mean of the batches' losses: each replica adds its batch's loss with
the weight `Task.loss_count(labels)` (its batch size by default; for a
`HeadTask`, the labelled entries, see `modeling.partial_labels`), and the
running mean's sums are added over replicas when it is read. So a smaller
last batch, or a batch with few labels, counts for its examples, and one and
several replicas give the same number. Equal, fully labelled batches give
the mean of the batches' losses, as before.
"""
import itertools
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import gin
import keras
import orbit
import tensorflow as tf

from multitask import base_model
from multitask import model_inputs
from multitask import results as results_lib
from multitask.core import base_task


class _EvaluationCheckpoint(tf.train.Checkpoint):
    """The evaluator's part of a training checkpoint: the model and the step.

    A restore reads what evaluation needs; the trainer's other items (the
    optimizer, task control, ...) are left unread without a warning. It
    fails if the checkpoint lacks a variable of the model.
    """

    def restore(self, save_path, options=None):
        status = super().restore(save_path, options)
        if save_path is None:
            return status
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise ValueError(f"The checkpoint {save_path} does not hold the evaluated model: "
                             f"{str(error).splitlines()[0]}") from error
        return status.expect_partial()


@gin.configurable
class MultiTaskEvaluator(orbit.AbstractEvaluator):
    """Evaluates each task on its own validation data with its own metrics."""

    def __init__(
        self,
        eval_tasks: Union[Iterable[base_task.Task], Mapping[str, base_task.Task]],
        model: Union[keras.Model, base_model.MultiTaskBaseModel],
        global_step: Optional[tf.Variable] = None,
        eval_steps: Optional[Mapping[str, Optional[int]]] = None,
        checkpoint_exporter=None,
        eval_datasets: Optional[Mapping[str, Any]] = None,
    ):
        """Creates the evaluator; call it inside `strategy.scope()`.

        Args:
          eval_tasks: The tasks to evaluate (a list, or a dict's values are used).
          model: A `MultiTaskBaseModel` (each task through `sub_tasks[name]`) or
            one keras.Model for all tasks.
          global_step: The step variable to report; a new one by default.
          eval_steps: `{task: steps}`; None or -1 evaluates the whole dataset.
          checkpoint_exporter: Optional `BestCheckpointExporter`.
          eval_datasets: `{task: dataset}` to evaluate on instead of each task's
            `build_inputs(task_config.validation_data)`; must be finite where
            a task evaluates its whole dataset.

        Raises:
          KeyError: A task has no sub-model in `model`.
          ValueError: The model cannot be built (see `base_model.ensure_built`).
        """
        self._strategy = tf.distribute.get_strategy()
        self._tasks = list(eval_tasks.values() if hasattr(eval_tasks, "values") else eval_tasks)
        self._model = model
        base_model.check_tasks_in_model(model, [task.name for task in self._tasks])
        self._global_step = global_step if global_step is not None else orbit.utils.create_global_step()
        self._checkpoint_exporter = checkpoint_exporter
        checkpoint_items = dict(getattr(model, "checkpoint_items", None) or {})
        self._checkpoint = _EvaluationCheckpoint(model=model, global_step=self._global_step, **checkpoint_items)
        self.eval_steps = dict(eval_steps or {})
        self._validation_losses = {task.name: keras.metrics.Mean("validation_loss") for task in self._tasks}
        self._validation_metrics = {task.name: task.build_metrics(training=False) for task in self._tasks}
        if eval_datasets is None:
            self.eval_datasets = {
                task.name: orbit.utils.make_distributed_dataset(
                    self._strategy, task.build_inputs, task.task_config.validation_data
                )
                for task in self._tasks
            }
        else:
            self.eval_datasets = {
                task.name: (
                    self._strategy.experimental_distribute_dataset(eval_datasets[task.name])
                    if isinstance(eval_datasets[task.name], tf.data.Dataset)
                    else eval_datasets[task.name]
                )
                for task in self._tasks
            }
        # Variables must exist before a checkpoint is restored into them
        # (Keras 3 variables miss TF's deferred restoration): sub-models
        # without Keras inputs are built from their validation data's spec.
        base_model.ensure_built(model, [task.name for task in self._tasks],
                                lambda name: model_inputs.features_spec(self.eval_datasets[name]))
        self._step_fns = {task.name: self._build_step_fn(task) for task in self._tasks}

    def _build_step_fn(self, task: base_task.Task):
        model = base_model.task_model(self._model, task.name)
        metrics = self._validation_metrics[task.name]
        loss_metric = self._validation_losses[task.name]

        def step_fn(inputs):
            logs = task.validation_step(inputs, model=model, metrics=metrics)
            loss = tf.cast(logs[task.loss], tf.float32)
            count = tf.cast(task.loss_count(base_task.split_inputs(inputs)[1]), tf.float32)
            # A replica that counts no example (an empty part of the last batch) is left out, NaN loss included.
            loss_metric.update_state(tf.where(count > 0, loss, tf.zeros_like(loss)), sample_weight=count)
            return logs

        @tf.function(reduce_retracing=True)
        def eval_step(inputs):
            outputs = self._strategy.run(step_fn, args=(inputs,))
            return tf.nest.map_structure(self._strategy.experimental_local_results, outputs)

        return eval_step

    @property
    def strategy(self):
        return self._strategy

    @property
    def tasks(self):
        return self._tasks

    @property
    def model(self):
        return self._model

    @property
    def global_step(self) -> tf.Variable:
        return self._global_step

    @property
    def checkpoint(self) -> tf.train.Checkpoint:
        """Model and global step (what an evaluation-only job restores)."""
        return self._checkpoint

    @property
    def validation_losses(self) -> Dict[str, keras.metrics.Mean]:
        return self._validation_losses

    @property
    def validation_metrics(self) -> Dict[str, list]:
        return self._validation_metrics

    def evaluate(self, num_steps) -> Dict[str, Dict[str, Any]]:
        """Evaluates every task.

        Args:
          num_steps: Steps per task where `eval_steps` sets none; -1 runs each
            validation dataset to its end.

        Returns:
          `{task: {"validation_loss": ..., <metric>: ..., <reduced aggregated logs>}}`
          as Python numbers.
        """
        for metric in self._validation_losses.values():
            metric.reset_state()
        for metrics in self._validation_metrics.values():
            for metric in metrics:
                metric.reset_state()
        results = {}
        for task in self._tasks:
            steps = self.eval_steps.get(task.name)
            steps = int(num_steps if steps is None else steps)
            # Batches are fetched eagerly: the end of the data must not be met
            # inside the traced step, where metric updates that do not depend
            # on the batch could already have run.
            state = None
            for inputs in itertools.islice(self.eval_datasets[task.name], None if steps < 0 else steps):
                state = task.aggregate_logs(state, self._step_fns[task.name](inputs))
            logs = {"validation_loss": self._validation_losses[task.name].result()}
            logs.update({metric.name: metric.result() for metric in self._validation_metrics[task.name]})
            if state is not None:
                logs.update(task.reduce_aggregated_logs(state, global_step=self._global_step))
            results[task.name] = logs
        results = results_lib.to_python(results)
        if self._checkpoint_exporter:
            self._checkpoint_exporter.maybe_export_checkpoint(
                self._checkpoint, results, int(self._global_step.numpy())
            )
        return results
