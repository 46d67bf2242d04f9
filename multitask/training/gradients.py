"""Shared and per-task variables, per-task gradients and their cross-replica means.

A gradient-level weighting method balances each task's gradient with respect
to the shared parameters (or, with `rep_grad`, the shared representation).
These are all-reduced and averaged over replicas before the method sees them,
so every replica aggregates the same `[A, D]` gradients and the update does
not depend on the number of replicas. Communication: an all-reduce of A x D
values (parameter gradients), or an all-gather of the A x B x d representation
gradients, on top of the optimizer's own all-reduce.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from multitask import base_model


def split_variables(model, task_names: Sequence[str], frozen_included: bool = False,
                    active: Optional[Sequence[str]] = None
                    ) -> Tuple[List[tf.Variable], Dict[str, List[tf.Variable]]]:
    """Splits the trainable variables into shared ones and each task's own.

    A variable is shared when more than one task's sub-model uses it (with one
    keras.Model for all tasks, every variable is shared).

    Args:
      model: A `MultiTaskBaseModel` or one keras.Model serving every task.
      task_names: The tasks.
      frozen_included: Split `base_model.optimizer_variables` (frozen parts
        included) instead of the currently trainable variables.
      active: Only the variables these tasks use (default: every task's).
        The split into shared and own is still over `task_names`.

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
    wanted = set(task_names if active is None else active)
    shared = [v for v, names in users.values() if len(names) > 1 and names & wanted]
    specific = {name: [v for v, names in users.values() if names == {name}] for name in task_names}
    return shared, specific


@tf.autograph.experimental.do_not_convert
def flatten(grads, variables) -> tf.Tensor:
    """One float32 vector of `grads` (None counts as zeros), in the order of `variables`.

    Gradients of a mixed-precision representation (bfloat16, float16) are
    balanced in float32.
    """
    return tf.concat(
        [tf.reshape(tf.zeros(v.shape, tf.float32) if g is None else tf.cast(g, tf.float32), [-1])
         for g, v in zip(grads, variables)],
        axis=0,
    )


@tf.autograph.experimental.do_not_convert
def unflatten(flat: tf.Tensor, variables) -> List[tf.Tensor]:
    """Splits a `flatten`ed vector back into tensors shaped like `variables`."""
    sizes = [v.shape.num_elements() for v in variables]
    return [tf.reshape(part, v.shape) for part, v in zip(tf.split(flat, sizes), variables)]


@tf.autograph.experimental.do_not_convert
def mean_over_replicas(value: tf.Tensor) -> tf.Tensor:
    """The mean of `value` over the replicas (called in a replica context)."""
    context = tf.distribute.get_replica_context()
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if context is None or replicas == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value) / replicas


@tf.autograph.experimental.do_not_convert
def gradient_diagnostics(grads: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Per-task gradient norms `[A]` and pairwise cosine similarities `[A, A]`."""
    norms = tf.norm(grads, axis=1)
    unit = grads / tf.maximum(norms, 1e-12)[:, None]
    return norms, tf.matmul(unit, unit, transpose_b=True)


@tf.autograph.experimental.do_not_convert
def gather_representation_gradients(per_task: tf.Tensor, representation: tf.Tensor) -> tf.Tensor:
    """The `[A, global batch * d]` representation gradients of the global batch.

    Each replica holds the gradients of its own examples; per-example
    gradients of the local mean are `replicas` times those of the global mean.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    tasks = per_task.shape[0]
    # Static sizes where known (drop_remainder batches), as XLA needs.
    batch = representation.shape[0] or tf.shape(representation)[0]
    per_example = tf.reshape(per_task, [tasks, batch, -1])
    if replicas == 1:
        gathered = per_example
    else:
        gathered = tf.distribute.get_replica_context().all_gather(per_example, axis=1)
    width = gathered.shape[1] * gathered.shape[2] if gathered.shape[1:].is_fully_defined() else -1
    return tf.reshape(gathered, [tasks, width]) / replicas


@tf.autograph.experimental.do_not_convert
def local_slice(combined: tf.Tensor, representation: tf.Tensor) -> tf.Tensor:
    """This replica's rows of a combined representation gradient of the global batch."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas == 1:
        return tf.reshape(combined, tf.shape(representation))
    local_batch = tf.shape(representation)[0]
    replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
    per_example = tf.reshape(combined, [replicas, local_batch, -1])[replica_id]
    return tf.reshape(per_example, tf.shape(representation))
