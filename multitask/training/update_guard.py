"""Scaling or undoing one step's update of groups of variables.

`UpdateGuard` keeps the optimizer from moving what it must not move at the
scale it would: it snapshots a group of variables (and their optimizer slots)
before a step, and afterwards scales the group's update by its factor (a
task's learning-rate multiplier), restoring the group and its slots entirely
when the factor is 0. Restoring is needed because stateful optimizers (Adam's
moments, momentum, weight decay) move a variable even when its gradient is
zero.
"""
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import tensorflow as tf


def _slot_prefix(variable) -> str:
    return getattr(variable, "path", variable.name).replace("/", "_") + "_"


def optimizer_slots(optimizer, variables, all_variables) -> List[tf.Variable]:
    """The optimizer variables that belong to `variables` (Adam's moments, momenta, ...).

    Keras 3 names a slot `<variable path with "/" as "_">_<slot name>`
    (`Optimizer.add_variable_from_reference`); a slot belongs to the variable
    of `all_variables` with the longest such prefix.

    Raises:
      ValueError: Two of `all_variables` have the same path, so a slot of
        one of `variables` cannot be attributed.
    """
    wanted = {id(v) for v in variables}
    prefixes = {}
    for variable in all_variables:
        prefixes.setdefault(_slot_prefix(variable), []).append(variable)
    slots = []
    for slot in optimizer.variables:
        name = slot.name
        owners = max(((p, vs) for p, vs in prefixes.items() if name.startswith(p)),
                     key=lambda item: len(item[0]), default=(None, []))[1]
        if any(id(v) in wanted for v in owners):
            if len(owners) > 1:
                raise ValueError(
                    f"Optimizer variable {slot.path!r} may belong to any of {len(owners)} variables "
                    f"with path {owners[0].path!r}; give their layers distinct names."
                )
            slots.append(slot)
    return slots


class UpdateGuard:
    """Scales or undoes one step's updates of groups of variables.

    Call `snapshot()` before the step and `apply(before, factors)` after it,
    both in cross-replica context (outside `strategy.run`).
    """

    def __init__(self, optimizer, groups: Mapping[str, Sequence[tf.Variable]], all_variables,
                 group_optimizers: Optional[Mapping[str, object]] = None):
        """Creates the guard.

        Args:
          optimizer: The Keras 3 optimizer (built).
          groups: `{group: variables}`; a group's variables and their
            optimizer slots are guarded together.
          all_variables: Every variable the optimizer updates (to attribute slots).
          group_optimizers: `{group: optimizer}` for groups that another
            optimizer updates (a task's own).
        """
        self._groups = {name: list(variables) for name, variables in groups.items() if variables}
        self._slots = {
            name: optimizer_slots((group_optimizers or {}).get(name, optimizer), variables, all_variables)
            for name, variables in self._groups.items()
        }

    @tf.autograph.experimental.do_not_convert
    def snapshot(self, groups: Iterable[str]) -> Dict[str, List[tf.Tensor]]:
        """Copies the variables and slots of `groups` (those without variables are left out)."""
        return {
            name: [tf.identity(v) for v in self._groups[name] + self._slots[name]]
            for name in groups if name in self._groups
        }

    @tf.autograph.experimental.do_not_convert
    def apply(self, before, factors: Mapping[str, tf.Tensor]) -> None:
        """Makes the update of each group in `before` `factor` times the optimizer's.

        A factor of 0 restores the group's variables and slots to `before`;
        a factor of 1 leaves the step as the optimizer made it.
        """
        for name, saved in before.items():
            factor = tf.cast(factors[name], tf.float32)
            variables = self._groups[name]
            slots = self._slots[name]

            def scale(variables=variables, saved=saved, slots=slots, factor=factor):
                for variable, old in zip(variables, saved):
                    f = tf.cast(factor, variable.dtype)
                    variable.assign(old + f * (tf.identity(variable) - old))
                restore = tf.equal(factor, 0.0)
                for slot, old in zip(slots, saved[len(variables):]):
                    slot.assign(tf.where(restore, old, tf.identity(slot)))
                return tf.constant(True)

            tf.cond(tf.not_equal(factor, 1.0), scale, lambda: tf.constant(False))


class TaskUpdateScaling:
    """The learning-rate multipliers of a joint trainer: per task (its own variables) and for the trunk.

    A loop scales only the groups whose multiplier is not 1 when it starts
    (`groups_for`), so the common case copies nothing.
    """

    # The group of the variables several tasks share.
    SHARED = "__shared__"

    def __init__(self, optimizer, own_variables: Mapping[str, Sequence[tf.Variable]], shared: Sequence[tf.Variable],
                 all_variables, shared_multiplier: Optional[float] = None,
                 task_optimizers: Optional[Mapping[str, object]] = None):
        """Creates the guard and, given a `shared_multiplier`, its variable.

        Args:
          optimizer: The trainer's optimizer (built).
          own_variables: `{task: its own variables}`.
          shared: The variables several tasks share.
          all_variables: Every variable the optimizer updates.
          shared_multiplier: The trunk's multiplier; None costs nothing.
          task_optimizers: `{task: optimizer}` of tasks with their own.
        """
        groups = dict(own_variables)
        self.shared_multiplier = None
        if shared_multiplier is not None:
            self.shared_multiplier = tf.Variable(
                float(shared_multiplier), trainable=False, name="shared_learning_rate_multiplier")
            groups[self.SHARED] = shared
        self._guard = UpdateGuard(optimizer, groups, all_variables, task_optimizers)

    def groups_for(self, plan) -> frozenset:
        """The groups whose update a loop with `plan` (a `task_control.LoopPlan`) scales."""
        groups = plan.scaled & set(plan.active)
        if self.shared_multiplier is not None and float(self.shared_multiplier.numpy()) != 1.0:
            groups |= {self.SHARED}
        return groups

    @tf.autograph.experimental.do_not_convert
    def snapshot(self, groups: Iterable[str]) -> Dict[str, List[tf.Tensor]]:
        return self._guard.snapshot(groups)

    @tf.autograph.experimental.do_not_convert
    def apply(self, before, control) -> None:
        """Scales each snapshotted group's update by its multiplier (`control`: the `TaskControl`)."""
        factors = {name: self.shared_multiplier.read_value() if name == self.SHARED
                   else control.learning_rate_multiplier(name) for name in before}
        self._guard.apply(before, factors)
