"""The Weighting contract: how T task losses and gradients become one update.

A method is a small object with explicit state (optax's model): given the
unweighted task losses `[T]` and each task's gradient `[T, D]` (flattened, with
respect to the shared parameters or the shared representation), `aggregate`
returns the combined gradient `[D]` and the `[T]` weights it applied. State that
lives across steps (loss history, moving averages, learnable weights, last
weights) is held in variables created in `__init__`, so it is saved with the
trainer's checkpoint.

Methods that only reweight losses set `loss_level = True` and implement
`combine_losses(losses) -> scalar`; the trainer then takes one backward pass of
that scalar instead of one per task.

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

    def aggregate(self, losses: tf.Tensor, grads: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Combines the task gradients into one.

        Args:
          losses: float32 `[T]`, the unweighted task losses.
          grads: float32 `[T, D]`, each task's gradient, flattened.

        Returns:
          `(combined [D], weights [T])`.
        """
        losses = tf.convert_to_tensor(losses, tf.float32)
        grads = tf.convert_to_tensor(grads, tf.float32)
        if self.recompute_every == 1:
            combined, weights = self._aggregate(losses, grads)
        else:
            def recompute():
                return self._aggregate(losses, grads)

            def reuse():
                return tf.linalg.matvec(grads, self.last_weights, transpose_a=True), tf.identity(self.last_weights)

            combined, weights = tf.cond(self.calls % self.recompute_every == 0, recompute, reuse)
        self.last_weights.assign(weights)
        self.calls.assign_add(1)
        return combined, weights

    @abc.abstractmethod
    def _aggregate(self, losses: tf.Tensor, grads: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Computes `(combined [D], weights [T])` from fresh inputs."""


class LossWeighting(Weighting):
    """A method that only reweights the task losses.

    Subclasses implement `loss_weights`. The combined gradient is
    `weights @ grads`, and `combine_losses` gives the trainer one scalar to
    differentiate instead of T per-task gradients.
    """

    loss_level = True

    @abc.abstractmethod
    def loss_weights(self, losses: tf.Tensor) -> tf.Tensor:
        """Returns the `[T]` weights for `losses`, updating any loss history."""

    def _aggregate(self, losses, grads):
        weights = self.loss_weights(losses)
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights

    def combine_losses(self, losses: tf.Tensor) -> tf.Tensor:
        """Returns the scalar to minimise: `sum(stop_gradient(weights) * losses)`.

        Methods with learnable weights override it so that the weights receive
        gradients too.
        """
        losses = tf.convert_to_tensor(losses, tf.float32)
        weights = tf.stop_gradient(self.loss_weights(losses))
        self.last_weights.assign(weights)
        self.calls.assign_add(1)
        return tf.reduce_sum(weights * losses)
