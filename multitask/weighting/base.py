"""The Weighting contract: how T task losses and gradients become one update.

A method is a small object with explicit state (optax's model): given the
task losses `[A]` and each task's gradient `[A, D]` (flattened, with respect to
the shared parameters or the shared representation) of the `A` tasks that
train at this step (`tasks`, indices in task order; every task by default),
`aggregate` returns the combined gradient `[D]` and the `[A]` weights it
applied. A task that does not train takes no part: the method balances the
others as if it did not exist, and its entries of the method's state stay as
they are (`select` / `write` read and write a per-task state for the tasks of
a call). The trainer hands in each loss already multiplied by its task's loss
weight (schedule included), so loss weights compose with every method in one
way: they scale each task's loss before the method sees it. State that
lives across steps (loss history, moving averages, learnable weights, last
weights) is held in variables created in `__init__`, so it is saved with the
trainer's checkpoint.

Methods that only reweight losses subclass `LossWeighting` and implement
`_loss_weights(losses, tasks)`; the trainer then takes one backward pass of
`combine_losses(losses, tasks)`, a scalar, instead of one per task.

Everything runs eagerly and inside `tf.function`, with TensorFlow ops only. The
trainer calls these methods in the replica context with inputs that are already
the same on every replica (all-reduced), so state updates are identical across
replicas; state variables use `ONLY_FIRST_REPLICA` aggregation for that.
"""
import abc
from typing import Optional, Sequence, Tuple

import tensorflow as tf

PARAMETER = "parameter"
REPRESENTATION = "representation"
GRADIENT_KINDS = (PARAMETER, REPRESENTATION)


class Weighting(tf.Module, metaclass=abc.ABCMeta):
    """Base class of all task-weighting methods.

    Gradient-level methods subclass it and implement `_aggregate`; methods that
    only reweight losses subclass `LossWeighting`.

    Class attributes:
      loss_level: True for `LossWeighting`s (they offer `combine_losses`).
      gradient_kinds: The gradients `aggregate` accepts: parameter gradients,
        representation gradients, or both.
      linear: True when the combined gradient is `weights @ grads` (so cached
        weights can be reused between recomputations).
    """

    loss_level = False
    gradient_kinds: Sequence[str] = GRADIENT_KINDS
    linear = True

    def __init__(self, num_tasks: int, recompute_every: int = 1, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T, the number of tasks.
          recompute_every: Compute new weights every this many calls of
            `aggregate` and reuse the last ones in between (linear methods).
          name: The module name.

        Raises:
          ValueError: A bad `num_tasks` or `recompute_every`.
        """
        super().__init__(name=name)
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}.")
        if not isinstance(recompute_every, int) or recompute_every < 1:
            raise ValueError(f"weighting.recompute_every must be an integer >= 1, got {recompute_every!r}.")
        if recompute_every > 1 and not self.linear:
            raise ValueError(
                f"weighting {type(self).__name__} does not combine gradients linearly, so its "
                "weights cannot be reused; set recompute_every to 1."
            )
        self.num_tasks = num_tasks
        self.recompute_every = recompute_every
        self.calls = self.state_variable(tf.zeros([], tf.int64), "calls")
        self.last_weights = self.state_variable(tf.ones([num_tasks]), "last_weights")
        if recompute_every > 1:
            # The tasks `last_weights` were computed for.
            self.last_tasks = self.state_variable(tf.ones([num_tasks], tf.bool), "last_tasks")

    @staticmethod
    def state_variable(initial_value, name: str) -> tf.Variable:
        """A non-trainable state variable, written identically by every replica."""
        return tf.Variable(
            initial_value,
            trainable=False,
            name=name,
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    @tf.autograph.experimental.do_not_convert
    def task_indices(self, tasks: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """`tasks` as a sorted tuple of task indices; None means every task.

        Raises:
          ValueError: An index out of range, a repeated one, or no task at all.
        """
        if tasks is None:
            return tuple(range(self.num_tasks))
        indices = tuple(sorted(int(i) for i in tasks))
        if not indices or len(set(indices)) != len(indices) or not 0 <= indices[0] <= indices[-1] < self.num_tasks:
            raise ValueError(f"tasks must be distinct indices in [0, {self.num_tasks}), got {tasks!r}.")
        return indices

    @tf.autograph.experimental.do_not_convert
    def select(self, value, tasks: Tuple[int, ...], axes: int = 1) -> tf.Tensor:
        """The entries of a per-task `value` (`[T]`, `[T, ...]`, or `[T, T]` with `axes=2`) for `tasks`."""
        value = tf.convert_to_tensor(value)
        if len(tasks) == self.num_tasks:
            return value
        for axis in range(axes):
            value = tf.gather(value, list(tasks), axis=axis)
        return value

    @tf.autograph.experimental.do_not_convert
    def write(self, variable: tf.Variable, tasks: Tuple[int, ...], value, axes: int = 1) -> None:
        """Assigns `value` to the entries of a per-task state `variable` for `tasks`; the others keep theirs."""
        if len(tasks) == self.num_tasks:
            variable.assign(value)
            return
        if axes == 1:
            indices = [[i] for i in tasks]
        else:
            indices = [[i, j] for i in tasks for j in tasks]
            value = tf.reshape(value, [len(indices)] + list(variable.shape[2:]))
        variable.assign(tf.tensor_scatter_nd_update(tf.convert_to_tensor(variable), indices, value))

    @tf.autograph.experimental.do_not_convert
    def expand(self, weights: tf.Tensor, tasks: Tuple[int, ...]) -> tf.Tensor:
        """The `[T]` vector with `weights` at `tasks` and 0 for the other tasks."""
        if len(tasks) == self.num_tasks:
            return weights
        return tf.scatter_nd([[i] for i in tasks], weights, [self.num_tasks])

    def aggregate(self, losses: tf.Tensor, grads: tf.Tensor,
                  tasks: Optional[Sequence[int]] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        """Combines the task gradients into one.

        Args:
          losses: float32 `[A]`, the losses of the tasks `tasks` (as the
            trainer gives them: each already times its loss weight).
          grads: float32 `[A, D]`, those tasks' gradients, flattened.
          tasks: The indices (in task order) of the `A` tasks taking part,
            sorted; None means all T. The method balances these tasks only:
            the others' state is left as it is and their weight is 0.

        Returns:
          `(combined [D], weights [A])`.
        """
        tasks = self.task_indices(tasks)
        losses = tf.convert_to_tensor(losses, tf.float32)
        grads = tf.convert_to_tensor(grads, tf.float32)
        if self.recompute_every == 1:
            combined, weights = self._aggregate(losses, grads, tasks)
        else:
            def recompute():
                return self._aggregate(losses, grads, tasks)

            def reuse():
                weights = self.select(self.last_weights, tasks)
                return tf.linalg.matvec(grads, weights, transpose_a=True), weights

            combined, weights = tf.cond(self.recomputes(tasks), recompute, reuse)
            self.last_tasks.assign(self._mask(tasks))
        self.last_weights.assign(self.expand(weights, tasks))
        self.calls.assign_add(1)
        return combined, weights

    @tf.autograph.experimental.do_not_convert
    def _mask(self, tasks: Tuple[int, ...]) -> tf.Tensor:
        return tf.constant([i in tasks for i in range(self.num_tasks)])

    @tf.autograph.experimental.do_not_convert
    def recomputes(self, tasks: Optional[Sequence[int]] = None) -> tf.Tensor:
        """Whether the next call for `tasks` computes new weights: every `recompute_every` calls, or for other tasks.

        A bool tensor, the same on every replica and in the cross-replica
        context. Where it is False, a trainer may take the step as one
        backward pass of `reused_objective` instead of a gradient per task.
        """
        if self.recompute_every == 1:
            return tf.constant(True)
        return tf.logical_or(self.calls % self.recompute_every == 0,
                             tf.reduce_any(tf.not_equal(self.last_tasks, self._mask(self.task_indices(tasks)))))

    def reused_objective(self, losses: tf.Tensor,
                         tasks: Optional[Sequence[int]] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        """`(sum of last_weights * losses, weights [A])`: a call that reuses the last weights.

        Its gradient is `aggregate`'s combined gradient on a call that reuses
        them (`last_weights @ grads`), with one backward pass. Call it only
        where `recomputes` is False; it counts as a call.
        """
        weights = self.select(self.last_weights, self.task_indices(tasks))
        self.calls.assign_add(1)
        return tf.reduce_sum(weights * tf.convert_to_tensor(losses, tf.float32)), weights

    def transform_losses(self, losses: tf.Tensor, tasks: Optional[Sequence[int]] = None) -> tf.Tensor:
        """The `[A]` losses whose gradients the method balances, from the trainer's weighted losses.

        The losses themselves by default. A method that learns per-task loss
        scales (IMTL-L) returns a differentiable function of the losses and of
        its `trainable_variables`; the joint trainer then balances the
        gradients of these losses and trains those variables by the gradient
        of their sum, with the model's optimizer.
        """
        del tasks
        return losses

    @abc.abstractmethod
    def _aggregate(self, losses: tf.Tensor, grads: tf.Tensor, tasks: Tuple[int, ...]) -> Tuple[tf.Tensor, tf.Tensor]:
        """Computes `(combined [D], weights [A])` from fresh inputs of the tasks `tasks`."""


class LossWeighting(Weighting):
    """A method that only reweights the task losses.

    Subclasses implement `_loss_weights`. The combined gradient is
    `weights @ grads`, and `combine_losses` gives the trainer one scalar to
    differentiate instead of T per-task gradients.

    Class attributes:
      constant: True when the weights are constants (they depend on neither
        the losses nor any state): the trainer then skips averaging the
        losses over replicas, and no call writes `last_weights` or `calls`.
    """

    loss_level = True
    constant = False

    def loss_weights(self, losses: tf.Tensor, tasks: Optional[Sequence[int]] = None) -> tf.Tensor:
        """Returns the `[A]` weights of the tasks `tasks` (None: all) for their `losses`, updating any history."""
        return self._loss_weights(tf.convert_to_tensor(losses, tf.float32), self.task_indices(tasks))

    @abc.abstractmethod
    def _loss_weights(self, losses: tf.Tensor, tasks: Tuple[int, ...]) -> tf.Tensor:
        """Returns the `[A]` weights for the `losses` of the tasks `tasks`."""

    def _aggregate(self, losses, grads, tasks):
        weights = self._loss_weights(losses, tasks)
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights

    def _objective(self, losses: tf.Tensor, tasks: Tuple[int, ...]) -> Tuple[tf.Tensor, tf.Tensor]:
        """`(scalar to minimise, [A] weights)`: by default `sum(stop_gradient(weights) * losses)`.

        Methods with learnable weights override it so that the weights receive
        gradients too.
        """
        weights = tf.stop_gradient(self._loss_weights(losses, tasks))
        return tf.reduce_sum(weights * losses), weights

    def combine_losses(self, losses: tf.Tensor, tasks: Optional[Sequence[int]] = None) -> tf.Tensor:
        """Returns the scalar to minimise for the `losses` `[A]` of the tasks `tasks` (None: all)."""
        return self.objective_and_weights(losses, tasks)[0]

    def objective_and_weights(self, losses: tf.Tensor,
                              tasks: Optional[Sequence[int]] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        """`combine_losses`, with the `[A]` weights it applied."""
        tasks = self.task_indices(tasks)
        objective, weights = self._objective(tf.convert_to_tensor(losses, tf.float32), tasks)
        if not self.constant:
            self.last_weights.assign(self.expand(weights, tasks))
            self.calls.assign_add(1)
        return objective, weights
