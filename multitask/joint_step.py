"""The joint step's pieces: per-task forward passes and balanced updates.

`task_losses` runs every task's forward pass (once through the shared encoder
when the tasks share their input and the model is an `EncoderHeadsModel`).
`balanced_train_step` turns the task losses into one update with a
`Weighting`:

- loss-level methods (`weighting.loss_level`, without `rep_grad`): one backward pass of
  `weighting.combine_losses(losses)`. The losses handed to it have the value of
  their mean over all replicas and the gradient of this replica's loss, so any
  formula of the losses gives the update one device would make on the global
  batch. Communication: one all-reduce of T scalars.
- gradient-level methods: each task's gradient with respect to the shared
  parameters (or, with `rep_grad`, the shared representation) is all-reduced
  and averaged over replicas before `weighting.aggregate`, so every replica
  aggregates the same `[T, D]` gradients and the update does not depend on the
  number of replicas. Communication: an all-reduce of T x D values (parameter
  gradients), or an all-gather of the T x B x d representation gradients, on
  top of the optimizer's own all-reduce. Task-specific parameters get their
  own task's gradient, unweighted, as in LibMTL.
"""
import functools
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf

from multitask import base_model
from multitask.core import base_task


def task_losses(multi_task, task_inputs, model, shared_features=None, training: bool = True):
    """Runs each task's forward pass and loss on this replica.

    Args:
      multi_task: The `MultiTask`.
      task_inputs: `{task: (features, labels)}`.
      model: A `MultiTaskBaseModel` or one keras.Model for all tasks.
      shared_features: The features every task reads, when they share them; with
        an `EncoderHeadsModel` the encoder then runs once for all tasks.
      training: Passed to the model.

    Returns:
      `(losses, outputs, representation)`: `{task: scalar loss with layer
      losses}`, `{task: model outputs}`, and the shared representation (None
      without a single pass).
    """
    losses, outputs = {}, {}
    representation = None
    single_pass = shared_features is not None and isinstance(model, base_model.EncoderHeadsModel)
    if single_pass:
        representation = model.encode(shared_features, training=training)
    for name, inputs in task_inputs.items():
        task = multi_task.tasks[name]
        features, labels = base_task.split_inputs(inputs)
        if single_pass:
            outputs[name] = model.task_outputs(name, representation, training=training)
            loss = tf.cast(task.build_losses(labels=labels, model_outputs=outputs[name]), tf.float32)
            extra = model.task_layer_losses(name)
            losses[name] = loss + tf.add_n([tf.cast(x, tf.float32) for x in extra]) if extra else loss
        else:
            sub_model = base_model.task_model(model, name)
            outputs[name] = sub_model(features, training=training)
            losses[name] = task.total_loss(labels, outputs[name], sub_model)
    return losses, outputs, representation


def gated_task_losses(multi_task, task_inputs, model, task_metrics, shared_features=None,
                      global_step=None, active=None, **metric_kwargs) -> Dict[str, tf.Tensor]:
    """`task_losses` for the active tasks only; also updates their metrics.

    `active` (`TaskControl.activity`) says which tasks are known to be active
    (a Python `True`: their forward pass and metrics run unconditionally) and
    gives the others' activity as boolean tensors; by default every task's
    `multi_task.control.is_active(task, global_step)` is read in the graph.

    Where the strategy can synchronise replicas inside control flow (no
    strategy, or one that needs no `merge_call`: MultiWorkerMirrored, TPU),
    each task's forward pass, loss and metric update run inside a `tf.cond` on
    `multi_task.control.is_active(task, global_step)`, so a disabled task
    costs no compute. Under strategies that synchronise through `merge_call`
    (MirroredStrategy, OneDevice) a cond branch cannot hold cross-replica ops
    (batch-norm statistics, the global labelled count of partial labels), so
    there every task's forward pass runs and a disabled task's loss is
    multiplied by 0 (its metrics are still skipped, and the trainer restores
    its variables). The shared encoder (single-pass case) always runs.

    Returns:
      `{task: scalar loss}`; 0 for a disabled task.
    """
    losses = {}
    single_pass = shared_features is not None and isinstance(model, base_model.EncoderHeadsModel)
    representation = model.encode(shared_features, training=True) if single_pass else None
    skip_forward = (not tf.distribute.has_strategy()
                    or tf.__internal__.distribute.strategy_supports_no_merge_call())
    for name, inputs in task_inputs.items():
        task = multi_task.tasks[name]
        flag = multi_task.control.is_active(name, global_step) if active is None else active[name]
        features, labels = base_task.split_inputs(inputs)

        def forward(task=task, name=name, features=features, labels=labels):
            if single_pass:
                outputs = model.task_outputs(name, representation, training=True)
                loss = tf.cast(task.build_losses(labels=labels, model_outputs=outputs), tf.float32)
                extra = model.task_layer_losses(name)
                loss = loss + tf.add_n([tf.cast(x, tf.float32) for x in extra]) if extra else loss
            else:
                sub_model = base_model.task_model(model, name)
                outputs = sub_model(features, training=True)
                loss = task.total_loss(labels, outputs, sub_model)
            return tf.reshape(tf.cast(loss, tf.float32), []), outputs

        def update_metrics(task=task, name=name, labels=labels, outputs=None):
            task.process_metrics(task_metrics[name], labels, outputs, **metric_kwargs)

        if flag is True:
            losses[name], outputs = forward()
            update_metrics(outputs=outputs)
        elif skip_forward:
            def forward_and_metrics(forward=forward, update_metrics=update_metrics):
                loss, outputs = forward()
                update_metrics(outputs=outputs)
                return loss

            losses[name] = tf.cond(flag, forward_and_metrics, lambda: tf.constant(0.0))
        else:
            loss, outputs = forward()
            losses[name] = loss * tf.cast(flag, tf.float32)
            tf.cond(flag, functools.partial(update_metrics, outputs=outputs), lambda: None)
    return losses


def split_variables(model, task_names: Sequence[str], frozen_included: bool = False
                    ) -> Tuple[List[tf.Variable], Dict[str, List[tf.Variable]]]:
    """Splits the trainable variables into shared ones and each task's own.

    A variable is shared when more than one task's sub-model uses it (with one
    keras.Model for all tasks, every variable is shared).

    Args:
      model: A `MultiTaskBaseModel` or one keras.Model serving every task.
      task_names: The tasks.
      frozen_included: Split `base_model.optimizer_variables` (frozen parts
        included) instead of the currently trainable variables.

    Returns:
      `(shared, {task: task-specific variables})`.
    """
    if not isinstance(model, base_model.MultiTaskBaseModel):
        return list(model.trainable_variables), {name: [] for name in task_names}
    candidates = {id(v) for v in (model.optimizer_variables if frozen_included else model.trainable_variables)}
    users = {}
    for name in task_names:
        for variable in model.sub_tasks[name].variables:
            if id(variable) in candidates:
                users.setdefault(id(variable), (variable, set()))[1].add(name)
    shared = [v for v, names in users.values() if len(names) > 1]
    specific = {name: [v for v, names in users.values() if names == {name}] for name in task_names}
    return shared, specific


def _flatten(grads, variables) -> tf.Tensor:
    return tf.concat(
        [tf.reshape(tf.zeros_like(v) if g is None else tf.convert_to_tensor(g), [-1])
         for g, v in zip(grads, variables)],
        axis=0,
    )


def _unflatten(flat: tf.Tensor, variables) -> List[tf.Tensor]:
    sizes = [int(tf.size(v)) for v in variables]
    return [tf.reshape(part, v.shape) for part, v in zip(tf.split(flat, sizes), variables)]


def _mean_over_replicas(value: tf.Tensor) -> tf.Tensor:
    context = tf.distribute.get_replica_context()
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if context is None or replicas == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value) / replicas


def gradient_diagnostics(grads: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Per-task gradient norms `[T]` and pairwise cosine similarities `[T, T]`."""
    norms = tf.norm(grads, axis=1)
    unit = grads / tf.maximum(norms, 1e-12)[:, None]
    return norms, tf.matmul(unit, unit, transpose_b=True)


def balanced_train_step(multi_task, weighting, task_inputs, model, optimizer, task_metrics,
                        shared_features=None, rep_grad: bool = False) -> Dict[str, tf.Tensor]:
    """One joint step whose update a `Weighting` decides (see the module docstring).

    Args:
      multi_task: The `MultiTask`.
      weighting: A `multitask.weighting.Weighting`.
      task_inputs: `{task: (features, labels)}` of this replica.
      model: A `MultiTaskBaseModel` or one keras.Model for all tasks.
      optimizer: The Keras 3 optimizer, built on the model's and the
        weighting's trainable variables.
      task_metrics: `{task: [metrics]}`.
      shared_features: The features all tasks read, when they share them.
      rep_grad: Aggregate gradients with respect to the shared representation
        (needs `shared_features` and an `EncoderHeadsModel`).

    Returns:
      `{task: loss, "total_loss": ..., "weights": [T], and for gradient-level
      methods "grad_norms": [T], "grad_cosines": [T, T]}`.
    """
    names = list(task_inputs)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    scale = optimizer.scale_loss(tf.constant(1.0))
    one_backward_pass = weighting.loss_level and not rep_grad
    with tf.GradientTape(persistent=not one_backward_pass) as tape:
        losses, outputs, representation = task_losses(multi_task, task_inputs, model, shared_features)
        local = tf.stack([losses[name] for name in names])
        global_mean = _mean_over_replicas(tf.stop_gradient(local))
        if one_backward_pass:
            # Value of the global mean, gradient of this replica's losses.
            objective = weighting.combine_losses(local + tf.stop_gradient(global_mean - local))
            scaled = optimizer.scale_loss(objective / replicas)
        else:
            scaled_losses = [optimizer.scale_loss(losses[name]) for name in names]
            # Task-specific parameters get their own task's gradient, unweighted.
            scaled_sum = optimizer.scale_loss(tf.add_n([losses[name] for name in names]) / replicas)
    logs = {name: losses[name] for name in names}
    if one_backward_pass:
        variables = list(model.trainable_variables) + list(weighting.trainable_variables)
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        logs["total_loss"] = objective
        logs["weights"] = tf.identity(weighting.last_weights)
    else:
        shared, specific = split_variables(model, names)
        targets = [representation] if rep_grad else shared
        per_task = tf.stack([_flatten(tape.gradient(loss, targets), targets) for loss in scaled_losses]) / scale
        if rep_grad:
            # Each replica holds the gradients of its own examples: gather the
            # global batch (per-example gradients of the local mean are
            # `replicas` times those of the global mean).
            context = tf.distribute.get_replica_context()
            # Static sizes where known (drop_remainder batches), as XLA needs.
            batch = representation.shape[0] or tf.shape(representation)[0]
            per_example = tf.reshape(per_task, [len(names), batch, -1])
            gathered = per_example if replicas == 1 else context.all_gather(per_example, axis=1)
            width = gathered.shape[1] * gathered.shape[2] if gathered.shape[1:].is_fully_defined() else -1
            gathered = tf.reshape(gathered, [len(names), width]) / replicas
            combined, weights = weighting.aggregate(global_mean, gathered)
            norms, cosines = gradient_diagnostics(gathered)
            local_part = _local_slice(combined, representation, replicas)
            shared_grads = tape.gradient(representation, shared, output_gradients=local_part * scale)
        else:
            per_task = _mean_over_replicas(per_task)
            combined, weights = weighting.aggregate(global_mean, per_task)
            norms, cosines = gradient_diagnostics(per_task)
            # The optimizer sums over replicas the gradients it is given.
            shared_grads = _unflatten(combined * scale / replicas, shared)
        specific_variables = [v for name in names for v in specific[name]]
        specific_grads = tape.gradient(scaled_sum, specific_variables) if specific_variables else []
        optimizer.apply_gradients(zip(list(shared_grads) + list(specific_grads), shared + specific_variables))
        del tape
        logs["total_loss"] = tf.reduce_sum(weights * global_mean)
        logs["weights"] = weights
        logs["grad_norms"] = norms
        logs["grad_cosines"] = cosines
    for name in names:
        _, labels = base_task.split_inputs(task_inputs[name])
        multi_task.tasks[name].process_metrics(task_metrics[name], labels, outputs[name])
    return logs


def _local_slice(combined: tf.Tensor, representation: tf.Tensor, replicas: int) -> tf.Tensor:
    """This replica's rows of a combined representation gradient of the global batch."""
    local_batch = tf.shape(representation)[0]
    if replicas == 1:
        return tf.reshape(combined, tf.shape(representation))
    replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
    per_example = tf.reshape(combined, [replicas, local_batch, -1])[replica_id]
    return tf.reshape(per_example, tf.shape(representation))
