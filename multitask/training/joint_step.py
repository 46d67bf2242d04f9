"""The joint step: the active tasks' losses, weighted, balanced, one update.

One path for every joint run, in three stages:

1. **Gate.** Only the tasks that train at this step run (the trainer's
   `task_control.LoopPlan`, fixed for the traced stretch of the loop): a task
   that is off takes no forward or backward pass and updates no metric.
2. **Weight.** Each active task's loss (`Task.total_loss`: its data loss plus
   its sub-model's layer losses) is multiplied by its loss weight at the step
   (`TaskControl.loss_weight`, schedule included).
3. **Balance.** The weighting method turns those weighted losses of the
   active tasks into one update; plain training (Model Garden's sum of
   `task_weight * loss`) is the `static` method with unit weights.

- Loss-level methods (`weighting.loss_level`, without `rep_grad`): one
  backward pass of `weighting.combine_losses(losses)`. The losses handed to it
  have the value of their mean over all replicas and the gradient of this
  replica's loss, so any formula of the losses gives the update one device
  would make on the global batch (a method with `constant` weights skips that
  all-reduce of A scalars).
- Gradient-level methods: each task's gradient with respect to the shared
  parameters (or the shared representation) is averaged over replicas before
  `weighting.aggregate` (see `training.gradients`). Task-specific parameters
  get their own task's (weighted) gradient, as in LibMTL.
- A gradient-level method that learns loss scales (`Weighting.transform_losses`,
  IMTL-L) balances the gradients of the scaled losses; its variables get the
  gradient of their sum.
- A step at which a linear method reuses its last weights (`recompute_every`;
  the trainer picks this step function with a `tf.cond` on
  `Weighting.recomputes`, around `strategy.run`) takes no per-task gradient:
  the shared variables get the gradient of the weights' sum of the losses,
  the task-specific ones that of the plain sum, in one backward pass each way
  down the model, and nothing is all-reduced but what the optimizer sums.
"""
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from multitask import base_model
from multitask.core import base_task
from multitask.training import gradients
from multitask.weighting import base as weighting_base


def task_losses(multi_task, task_inputs, model, shared_features=None, training: bool = True):
    """Runs the forward pass and loss of each task of `task_inputs` on this replica.

    Args:
      multi_task: The `MultiTask`.
      task_inputs: `{task: (features, labels)}`.
      model: A `MultiTaskBaseModel` or one keras.Model for all tasks.
      shared_features: The features every task reads, when they share them; a
        model with `encode` / `task_outputs` (`base_model.encodes_once`)
        then encodes them once for all tasks.
      training: Passed to the model.

    Returns:
      `(losses, outputs, representation)`: `{task: float32 scalar loss with
      layer losses}`, `{task: model outputs}`, and the shared representation
      (None without a single pass).
    """
    losses, outputs = {}, {}
    representation = None
    single_pass = shared_features is not None and base_model.encodes_once(model)
    if single_pass:
        representation = model.encode(shared_features, training=training)
    for name, inputs in task_inputs.items():
        task = multi_task.tasks[name]
        features, labels = base_task.split_inputs(inputs)
        if single_pass:
            outputs[name] = model.task_outputs(name, representation, training=training)
            loss = tf.cast(task.build_losses(labels=labels, model_outputs=outputs[name]), tf.float32)
            extra = base_model.single_pass_layer_losses(model, name)
            loss = loss + tf.add_n([tf.cast(x, tf.float32) for x in extra]) if extra else loss
        else:
            sub_model = base_model.task_model(model, name)
            outputs[name] = sub_model(features, training=training)
            loss = task.total_loss(labels, outputs[name], sub_model)
        losses[name] = tf.reshape(tf.cast(loss, tf.float32), [])
    return losses, outputs, representation


@tf.autograph.experimental.do_not_convert
def _apply(optimizer, grads, variables, variable_optimizers=None) -> None:
    """Applies the gradients that exist (a variable no active task reaches is left alone).

    A variable of `variable_optimizers` (`{id(variable): optimizer}`) is
    updated by its own optimizer, every other one by `optimizer`.
    """
    groups = {id(optimizer): (optimizer, [])}
    for grad, variable in zip(grads, variables):
        if grad is not None:
            owner = (variable_optimizers or {}).get(id(variable), optimizer)
            groups.setdefault(id(owner), (owner, []))[1].append((grad, variable))
    for owner, pairs in groups.values():
        if pairs:
            owner.apply_gradients(pairs)


def train_step(multi_task, weighting, task_inputs, model, optimizer, task_metrics, global_step,
               shared_features=None, rep_grad: bool = False, variable_optimizers=None,
               reuse_weights: bool = False, **metric_kwargs) -> Dict[str, tf.Tensor]:
    """One joint step over the tasks of `task_inputs` (see the module docstring).

    Args:
      multi_task: The `MultiTask`; its `control` gives the loss weights.
      weighting: A `multitask.weighting.Weighting` for all the MultiTask's tasks.
      task_inputs: `{task: (features, labels)}` of this replica, for the
        tasks that train at this step (in task order).
      model: A `MultiTaskBaseModel` or one keras.Model for all tasks.
      optimizer: The Keras 3 optimizer, built on the model's and the
        weighting's trainable variables.
      task_metrics: `{task: [metrics]}`.
      global_step: The step at which the loss-weight schedules are read.
      shared_features: The features all tasks read, when they share them.
      rep_grad: Aggregate gradients with respect to the shared representation
        (needs `shared_features` and `base_model.encodes_once(model)`).
      variable_optimizers: `{id(variable): optimizer}`: variables a task's
        own optimizer updates (`training.task_optimizers`).
      reuse_weights: The gradient-level method reuses its last weights at
        this step (only where `weighting.recomputes` is False).
      **metric_kwargs: Passed to each task's `process_metrics`.

    Returns:
      `{task: unweighted loss, "total_loss": the balanced objective, "weights":
      [A]}`, plus `"grad_norms"` `[A]` and `"grad_cosines"` `[A, A]` for
      gradient-level methods; A counts the tasks of `task_inputs`.
    """
    all_names = list(multi_task.tasks)
    names = list(task_inputs)
    tasks = [all_names.index(name) for name in names]
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    control = multi_task.control
    loss_weights = tf.stack([control.loss_weight(name, global_step) for name in names])
    one_backward_pass = weighting.loss_level and not rep_grad
    with tf.GradientTape(persistent=not one_backward_pass) as tape:
        losses, outputs, representation = task_losses(multi_task, task_inputs, model, shared_features)
        weighted = tf.stack([losses[name] for name in names]) * loss_weights
        if one_backward_pass:
            if not weighting.constant:
                # Value of the global mean, gradient of this replica's losses.
                weighted += tf.stop_gradient(gradients.mean_over_replicas(tf.stop_gradient(weighted)) - weighted)
            objective, weights = weighting.objective_and_weights(weighted, tasks)
            scaled = optimizer.scale_loss(objective / replicas)
        else:
            weighted = weighting.transform_losses(weighted, tasks)
            if reuse_weights:
                objective, weights = weighting.reused_objective(weighted, tasks)
                scaled = optimizer.scale_loss(objective / replicas)
            else:
                scaled_losses = [optimizer.scale_loss(weighted[i]) for i in range(len(names))]
            # Task-specific parameters get their own task's gradient.
            scaled_sum = optimizer.scale_loss(tf.reduce_sum(weighted) / replicas)
    logs = dict(losses)
    if one_backward_pass:
        variables = list(model.trainable_variables) + list(weighting.trainable_variables)
        _apply(optimizer, tape.gradient(scaled, variables), variables, variable_optimizers)
        logs["total_loss"] = objective
        logs["weights"] = weights
    elif reuse_weights:
        shared, specific = gradients.split_variables(model, all_names, active=names)
        own_grads, own = _own_gradients(tape, weighting, specific, names, scaled_sum)
        _apply(optimizer, tape.gradient(scaled, shared) + own_grads, shared + own, variable_optimizers)
        del tape
        logs["total_loss"] = objective
        logs["weights"] = weights
    else:
        logs.update(_balance_gradients(tape, weighting, model, optimizer, all_names, names, tasks, weighted,
                                       scaled_losses, scaled_sum, representation, rep_grad, variable_optimizers))
        del tape
    for name in names:
        _, labels = base_task.split_inputs(task_inputs[name])
        multi_task.tasks[name].process_metrics(task_metrics[name], labels, outputs[name], **metric_kwargs)
    return logs


def _own_gradients(tape, weighting, specific, names, scaled_sum):
    """`(gradients, variables)` of what the plain sum of the losses trains, in one backward pass.

    The active tasks' own variables (each gets its task's gradient) and a
    gradient-level method's learned loss scales (`transform_losses`).
    """
    variables = [v for name in names for v in specific[name]] + list(weighting.trainable_variables)
    return (tape.gradient(scaled_sum, variables) if variables else []), variables


def _balance_gradients(tape, weighting, model, optimizer, all_names: List[str], names: Sequence[str],
                       tasks: List[int], weighted, scaled_losses, scaled_sum, representation,
                       rep_grad: bool, variable_optimizers) -> Dict[str, tf.Tensor]:
    """The gradient-level update: per-task gradients, balanced, applied."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    scale = optimizer.scale_loss(tf.constant(1.0))
    global_mean = gradients.mean_over_replicas(tf.stop_gradient(weighted))
    shared, specific = gradients.split_variables(model, all_names, active=names)
    targets = [representation] if rep_grad else shared
    per_task = tf.stack([gradients.flatten(tape.gradient(loss, targets), targets) for loss in scaled_losses])
    per_task /= scale
    if rep_grad:
        gathered = gradients.gather_representation_gradients(per_task, representation)
        combined, weights = weighting.aggregate(global_mean, gathered, tasks)
        norms, cosines = gradients.gradient_diagnostics(gathered)
        local_part = gradients.local_slice(combined, representation)
        shared_grads = tape.gradient(representation, shared,
                                     output_gradients=tf.cast(local_part * scale, representation.dtype))
    else:
        per_task = gradients.mean_over_replicas(per_task)
        combined, weights = weighting.aggregate(global_mean, per_task, tasks)
        norms, cosines = gradients.gradient_diagnostics(per_task)
        # The optimizer sums over replicas the gradients it is given.
        shared_grads = gradients.unflatten(combined * scale / replicas, shared)
    own_grads, own = _own_gradients(tape, weighting, specific, names, scaled_sum)
    _apply(optimizer, list(shared_grads) + list(own_grads), shared + own, variable_optimizers)
    return {"total_loss": tf.reduce_sum(weights * global_mean), "weights": weights,
            "grad_norms": norms, "grad_cosines": cosines}


def check_weighting(weighting, rep_grad: bool, num_tasks: int, model, shared_input: bool) -> None:
    """Refuses a weighting / `rep_grad` / model / data combination that cannot work, before any step.

    Raises:
      ValueError: The weighting is for another number of tasks, takes another
        kind of gradient, or `rep_grad` lacks what it needs (a gradient
        method, one shared dataset, a model with `encode` / `task_outputs`
        and one tensor as representation, no learnable weights).
    """
    if weighting is None:
        if rep_grad:
            raise ValueError("trainer.rep_grad needs a trainer.weighting method to balance gradients.")
        return
    label = getattr(weighting, "registered_name", type(weighting).__name__)
    if weighting.num_tasks != num_tasks:
        raise ValueError(f"The weighting is for {weighting.num_tasks} tasks; the MultiTask has {num_tasks}.")
    kind = weighting_base.REPRESENTATION if rep_grad else weighting_base.PARAMETER
    if (rep_grad or not weighting.loss_level) and kind not in weighting.gradient_kinds:
        raise ValueError(
            f"weighting {label!r} takes {' or '.join(weighting.gradient_kinds)} gradients, not {kind} "
            f"gradients: set trainer.rep_grad to {not rep_grad}."
        )
    if not rep_grad:
        return
    if weighting.loss_level and weighting.trainable_variables:
        raise ValueError(
            "trainer.rep_grad: this weighting learns its weights from the loss, which the "
            "representation-gradient path does not differentiate; set rep_grad to False."
        )
    reason = single_pass_off(model, shared_input)
    if reason:
        raise ValueError(f"trainer.rep_grad needs the encoder's single pass (one representation for every "
                         f"task), which is off: {reason}")
    if callable(getattr(model, "check_rep_grad", None)):
        model.check_rep_grad()


def single_pass_off(model, shared_input: bool) -> Optional[str]:
    """Why the joint step cannot encode the features once for all tasks; None when it can."""
    if not shared_input:
        return ("each task reads its own train data; one shared dataset for all tasks (task.shared_train_data, "
                "or train_datasets=one source) lets the model encode each batch once.")
    if not base_model.encodes_once(model):
        return (f"the model ({type(model).__name__}) has no encode(features, training) and "
                "task_outputs(task_name, representation, training); a MultiTaskBaseModel with both (as "
                "EncoderHeadsModel has) encodes each batch once.")
    return None


def check_shared_parameters(weighting, rep_grad: bool, model, task_names: Sequence[str]) -> None:
    """Refuses a parameter-gradient method when every shared parameter is frozen.

    Raises:
      ValueError: The method would have no shared parameters to balance.
    """
    if weighting is None or weighting.loss_level or rep_grad:
        return
    if not gradients.split_variables(model, task_names)[0]:
        raise ValueError(
            f"weighting {getattr(weighting, 'registered_name', type(weighting).__name__)!r} balances the "
            "gradients of the shared parameters, and all of them are frozen: unfreeze them, or use "
            "rep_grad or a loss-level weighting."
        )
