"""Optimizers of their own for some tasks (HMTL's design): each with its state, schedule and step count.

In the interleaving trainer a task's optimizer makes every update of that
task's steps (its sub-model's variables, shared ones included). In the joint
trainer the variables several tasks share receive one balanced update from
the trainer's optimizer, and a task's optimizer updates the task's own
variables (its head); since the joint step differentiates one loss scaled by
the trainer's optimizer, task optimizers there cannot be used under a
float16 policy (use bfloat16).
"""
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf


def build_task_optimizers(
    task_optimizers: Optional[Mapping[str, keras.optimizers.Optimizer]],
    task_names: Sequence[str],
    variables_of: Callable[[str], List[tf.Variable]],
    loss_scaling: bool,
    joint: bool,
) -> Dict[str, keras.optimizers.Optimizer]:
    """Builds each task's optimizer on the variables it updates.

    Args:
      task_optimizers: `{task: optimizer}`, or None.
      task_names: The tasks.
      variables_of: The variables task `name`'s optimizer updates (frozen parts included).
      loss_scaling: Whether the policy computes in float16.
      joint: Whether they serve the joint trainer.

    Returns:
      `{task: built optimizer}`, wrapped in a `LossScaleOptimizer` under
      float16 (interleaving trainer).

    Raises:
      KeyError: An unknown task.
      ValueError: Joint trainer under float16, or a task with no variables of its own.
    """
    task_optimizers = dict(task_optimizers or {})
    unknown = sorted(set(task_optimizers) - set(task_names))
    if unknown:
        raise KeyError(f"task_optimizers for unknown tasks {unknown}; tasks: {', '.join(task_names)}.")
    if task_optimizers and joint and loss_scaling:
        raise ValueError(
            f"task_optimizers ({', '.join(sorted(task_optimizers))}) in the joint trainer: under "
            "mixed_float16 the joint loss is scaled by the trainer's optimizer alone; use "
            "runtime.mixed_precision_dtype bfloat16, or the interleaving trainer."
        )
    built = {}
    for name, optimizer in task_optimizers.items():
        variables = variables_of(name)
        if not variables:
            raise ValueError(
                f"task_optimizers[{name!r}]: task {name!r} has no variables of its own to update "
                "(in the joint trainer its optimizer updates its head); drop its optimizer_config."
            )
        if loss_scaling and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(variables)
        built[name] = optimizer
    return built


def variable_owners(task_optimizers: Mapping[str, keras.optimizers.Optimizer],
                    variables_of: Callable[[str], List[tf.Variable]]) -> Dict[int, keras.optimizers.Optimizer]:
    """`{id(variable): optimizer}` for the variables a task optimizer updates (the joint step's routing)."""
    return {id(v): optimizer for name, optimizer in task_optimizers.items() for v in variables_of(name)}
