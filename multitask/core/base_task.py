"""The single-task contract: Model Garden's `Task`, for Keras 3 models.

A `Task` builds its own data, model, losses and metrics, and knows how to take a
training and a validation step. The same Task class trains alone (a single-task
experiment) and, unchanged, inside a `MultiTask`.

Layer losses (`model.losses`: `add_loss` terms and weight regularizers) are
always part of a task's loss: `Task.total_loss` adds them to `build_losses`,
and every step of the library (`train_step`, `validation_step`, the joint
multi-task step) goes through it. `build_losses` therefore receives
`aux_losses=None` from the library and should return the data loss only; a
Model Garden task that adds `aux_losses` itself stays correct, as it gets none.

The logged `validation_loss` and `training_loss` are means over examples, not
over steps: the evaluator and the trainers add each step's loss to their
running mean with the weight `Task.loss_count(labels)` (see there).
"""
import abc
from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from official.core import config_definitions

from multitask.core import optimization
from multitask.core import warm_start

OptimizationConfig = config_definitions.OptimizationConfig
RuntimeConfig = config_definitions.RuntimeConfig


@tf.autograph.experimental.do_not_convert
def split_inputs(inputs):
    """Splits a dataset element into `(features, labels)`.

    Args:
      inputs: A `(features, labels)` pair, or a single structure that holds
        both (then it is passed as features and as labels, as in Model Garden).

    Returns:
      The `(features, labels)` pair.
    """
    if isinstance(inputs, tuple) and len(inputs) == 2:
        return inputs
    return inputs, inputs


@tf.autograph.experimental.do_not_convert
def batch_size(structure) -> Optional[tf.Tensor]:
    """The leading dimension of the first tensor of `structure` with one, as float32; None if none has.

    Dense, ragged and sparse tensors (and arrays) count; scalars are skipped.
    """
    for x in tf.nest.flatten(structure):
        if isinstance(x, tf.RaggedTensor):
            return tf.cast(x.nrows(), tf.float32)
        if isinstance(x, tf.SparseTensor):
            return tf.cast(x.dense_shape[0], tf.float32)
        if x is None or isinstance(x, (str, bytes)) or not hasattr(x, "shape"):
            continue
        x = tf.convert_to_tensor(x)
        if x.shape.rank is not None and x.shape.rank >= 1:
            return tf.cast(tf.shape(x)[0], tf.float32)
    return None


@tf.autograph.experimental.do_not_convert
def layer_loss(model) -> Optional[tf.Tensor]:
    """Returns the sum of `model.losses` as float32, or None when it has none."""
    losses = getattr(model, "losses", None)
    if not losses:
        return None
    return tf.add_n([tf.cast(loss, tf.float32) for loss in losses])


class Task(tf.Module, metaclass=abc.ABCMeta):
    """A single-replica view of one task's training and evaluation.

    Subclasses implement `build_inputs` and usually `build_model`,
    `build_losses` and `build_metrics`; they register their config class with
    `official.core.task_factory.register_task_cls`.
    """

    # The key of the loss in the logs of train_step and validation_step.
    loss = "loss"

    def __init__(self, params, logging_dir: Optional[str] = None, name: Optional[str] = None):
        """Initializes the task.

        Args:
          params: The task config, an `official.core.config_definitions.TaskConfig`.
          logging_dir: Where the run writes; tasks may write extra files there.
          name: The task name; defaults to `params.name`, then to the class name.
        """
        super().__init__(name=name or getattr(params, "name", None) or None)
        self._task_config = params
        self._logging_dir = logging_dir or ""

    @property
    def task_config(self):
        return self._task_config

    @property
    def logging_dir(self) -> str:
        return self._logging_dir

    @property
    def label_key(self) -> str:
        """This task's entry in the `{key: labels}` of a dataset shared by the tasks: its name."""
        return self.name

    @classmethod
    def create_optimizer(
        cls,
        optimizer_config: OptimizationConfig,
        runtime_config: Optional[RuntimeConfig] = None,
    ) -> keras.optimizers.Optimizer:
        """Creates a Keras 3 optimizer from configs.

        Args:
          optimizer_config: Optimizer, learning-rate and warmup settings.
          runtime_config: The runtime; a float16 `mixed_precision_dtype` (or a
            float16 global Keras policy) wraps the optimizer in a
            `keras.optimizers.LossScaleOptimizer`.

        Returns:
          A `keras.optimizers.Optimizer`.
        """
        return optimization.create_optimizer(optimizer_config, runtime_config)

    def initialize(self, model: keras.Model):
        """Restores `task_config.init_checkpoint` into `model`, if one is set.

        Used as the checkpoint manager's `init_fn`: it runs only when the run's
        own model_dir holds no checkpoint yet. Restores
        `model.checkpoint_items` when the model defines them, else `model=model`.

        Args:
          model: The model built by this task.

        Raises:
          ValueError: The checkpoint is missing or lacks the model's variables.
        """
        ckpt_dir_or_file = getattr(self.task_config, "init_checkpoint", "")
        if ckpt_dir_or_file:
            items = getattr(model, "checkpoint_items", None) or dict(model=model)
            warm_start.restore_items(items, ckpt_dir_or_file)

    def build_model(self) -> keras.Model:
        """Creates the task's model."""
        raise NotImplementedError(f"{type(self).__name__} does not build a model of its own.")

    @abc.abstractmethod
    def build_inputs(self, params, input_context: Optional[tf.distribute.InputContext] = None):
        """Returns the `tf.data.Dataset` described by `params` for one host.

        Args:
          params: A `DataConfig` (the task's train_data or validation_data).
          input_context: The distribution input context; its per-replica batch
            size and input pipeline id are used to batch and shard.

        Returns:
          A dataset of `(features, labels)` batches of the per-replica size.
        """

    def build_losses(self, labels, model_outputs, aux_losses=None) -> tf.Tensor:
        """Returns the scalar data loss of one batch.

        Args:
          labels: The label structure of the batch.
          model_outputs: The model's outputs for the batch.
          aux_losses: Extra losses to add; the library passes None and adds the
            model's layer losses itself (see `total_loss`).

        Returns:
          A scalar float32 tensor. The base class returns the sum of aux_losses.
        """
        del labels, model_outputs
        if not aux_losses:
            return tf.constant(0.0, tf.float32)
        return tf.add_n([tf.cast(loss, tf.float32) for loss in aux_losses])

    def total_loss(self, labels, model_outputs, model) -> tf.Tensor:
        """Returns `build_losses` plus the model's layer losses, as float32.

        Args:
          labels: The label structure of the batch.
          model_outputs: The model's outputs for the batch.
          model: The model just called; its `losses` are added.

        Returns:
          A scalar float32 tensor.
        """
        loss = tf.cast(self.build_losses(labels=labels, model_outputs=model_outputs), tf.float32)
        extra = layer_loss(model)
        return loss if extra is None else loss + extra

    def loss_count(self, labels) -> tf.Tensor:
        """The weight of this replica's loss (`total_loss`) in the logged loss means, as float32.

        The evaluator's `validation_loss` and the trainers' `training_loss`
        are running means that add each step's loss on each replica with this
        weight: `sum(count * loss) / sum(count)` over the replicas and steps of
        an evaluation (or a training loop). Where `count * loss` is the
        replica's summed loss over its examples and the counts add up over
        replicas to the batch's examples, that is the mean loss over every
        example of the evaluation, on any number of replicas. Layer losses
        (one number per step) enter with their step's weight.

        The base class returns the local batch size (the leading dimension of
        the first label tensor that has one; 1.0 if none has), which fits a
        loss that is the mean over this replica's examples (the default of
        Keras losses). Equal batches then give the mean of the steps' losses,
        as a plain mean would; a smaller last batch, or a batch split
        unevenly over replicas, counts for its examples. A task whose loss is
        normalised otherwise overrides this: a `HeadTask`'s loss, the mean
        over the labelled entries of the global batch
        (`partial_labels.masked_mean`), has `global labelled count /
        num_replicas` (`partial_labels.loss_count`).

        Args:
          labels: The label structure of this replica's batch.

        Returns:
          A float32 scalar >= 0; a step whose count is 0 is left out.
        """
        count = batch_size(labels)
        return tf.constant(1.0, tf.float32) if count is None else count

    def build_metrics(self, training: bool = True):
        """Returns the list of Keras metrics this task streams."""
        del training
        return []

    def process_metrics(self, metrics, labels, model_outputs, **kwargs):
        """Updates `metrics` with one batch."""
        del kwargs
        for metric in metrics:
            metric.update_state(labels, model_outputs)

    def train_step(self, inputs, model: keras.Model, optimizer: keras.optimizers.Optimizer, metrics=None) -> Dict[str, Any]:
        """Runs one forward and backward pass on this replica.

        The loss is divided by the number of replicas because the optimizer sums
        gradients across replicas; it is scaled by a `LossScaleOptimizer`'s
        current scale (a no-op for other optimizers).

        Args:
          inputs: One `(features, labels)` batch.
          model: The task's model.
          optimizer: The optimizer; it must already track `model`'s variables.
          metrics: The metrics from `build_metrics(training=True)`.

        Returns:
          Logs with the unscaled loss under `self.loss`.
        """
        features, labels = split_inputs(inputs)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            loss = self.total_loss(labels, outputs, model)
            scaled_loss = optimizer.scale_loss(loss / replicas)
        variables = model.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        if metrics:
            self.process_metrics(metrics, labels, outputs)
        return {self.loss: loss}

    def validation_step(self, inputs, model: keras.Model, metrics=None) -> Dict[str, Any]:
        """Runs one forward pass on this replica and updates `metrics`.

        Returns:
          Logs with the loss under `self.loss`; subclasses may add outputs for
          `aggregate_logs`.
        """
        features, labels = split_inputs(inputs)
        outputs = self.inference_step(features, model)
        loss = self.total_loss(labels, outputs, model)
        if metrics:
            self.process_metrics(metrics, labels, outputs)
        return {self.loss: loss}

    def inference_step(self, inputs, model: keras.Model):
        """Returns the model's outputs in inference mode."""
        return model(inputs, training=False)

    def aggregate_logs(self, state, step_logs):
        """Folds one validation step's logs into `state` (on the host).

        Runs after every validation step with the step's logs (values are
        tuples with one entry per local replica). Subclasses accumulate what
        `reduce_aggregated_logs` needs, e.g. predictions and labels as numpy.

        Returns:
          The new state; the base class keeps none.
        """
        del step_logs
        return state

    def reduce_aggregated_logs(self, aggregated_logs, global_step: Optional[tf.Tensor] = None) -> Dict[str, Any]:
        """Turns the aggregated state into metrics over the whole eval set.

        Returns:
          A dict of metric name to value; the base class returns none.
        """
        del aggregated_logs, global_step
        return {}
