"""GradNorm: weights that equalise the tasks' weighted gradient norms (LibMTL's `GradNorm`)."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry

# Floor applied to the weights after each step, before renormalising, so that
# they stay positive (a weight at 0 would stay there).
_MIN_WEIGHT = 1e-4


def _positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"weighting.{name} must be a positive number, got {value!r}.")
    return float(value)


@registry.register_weighting("gradnorm")
class GradNorm(base.Weighting):
    """Balances the tasks' training rates through their gradient norms.

    Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization
    for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.

    With the task gradients `g_i` (the rows of `grads`) and the loss weights `w`
    (`task_weights`, initially 1), each call computes

        G_i = ||w_i * g_i||_2,                      G_bar = mean_i G_i,
        l_i = L_i / L_i(0),                         r_i = l_i / mean_j l_j,
        L_grad(w) = sum_i |G_i - const(G_bar * r_i^alpha)|,

    where `L_i(0)` are the losses of the first call (kept in the
    `initial_losses` state variable) and the target is held constant, as in the
    paper. It returns `combined = w @ grads` and `w`, then takes one gradient
    descent step on `L_grad`,

        w <- w - learning_rate * sign(G - G_bar * r^alpha) * ||g||,

    floors the weights at 1e-4 and renormalises them so that `sum(w) = T`. The
    new weights apply from the next call. A task whose weighted gradient is
    larger than its target (large norm, or fast training) loses weight.

    The weights follow their own rule, so `task_weights` is a non-trainable
    state variable: the trainer's optimizer does not touch it.

    Hyper-parameters:
      alpha: The strength of the restoring force towards a common training
        rate; 1.5 as in LibMTL (the paper uses 0.12 to 3 depending on the
        task set).
      learning_rate: The step size of the weights' update, 0.025 as in common
        implementations.
      recompute_every: Update and apply new weights every this many calls and
        reuse the last ones in between.

    Differences from LibMTL: LibMTL parametrises the weights as
    `T * softmax(logits)`, trains the logits with the model's optimizer, skips
    GradNorm for the first epoch (equal weights) and takes `L_i(0)` as that
    epoch's average loss. Here, as in the paper, the weights themselves take a
    plain gradient step at their own learning rate, are floored and
    renormalised, GradNorm applies from the first call, and `L_i(0)` is the
    first call's loss. Zero initial losses or a zero mean ratio give
    `r_i = 0` (`divide_no_nan`) instead of NaN.
    """

    def __init__(
        self,
        num_tasks: int,
        alpha: float = 1.5,
        learning_rate: float = 0.025,
        recompute_every: int = 1,
        name: Optional[str] = None,
    ):
        """Initializes the method.

        Args:
          num_tasks: T.
          alpha: The restoring-force exponent, >= 0.
          learning_rate: The weights' step size, > 0.
          recompute_every: Update the weights every this many calls.
          name: The module name.

        Raises:
          ValueError: A negative alpha, a non-positive learning rate or a bad
            `recompute_every`.
        """
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"weighting.alpha must be a non-negative number, got {alpha!r}.")
        self.alpha = float(alpha)
        self.learning_rate = _positive_number("learning_rate", learning_rate)
        self.task_weights = self.state_variable(tf.ones([num_tasks]), "task_weights")
        self.initial_losses = self.state_variable(tf.zeros([num_tasks]), "initial_losses")
        self.has_initial_losses = self.state_variable(tf.constant(False), "has_initial_losses")

    def _aggregate(self, losses, grads, tasks):
        weights = self.select(self.task_weights, tasks)
        initial_losses = tf.where(self.has_initial_losses, self.select(self.initial_losses, tasks), losses)
        self.write(self.initial_losses, tasks, initial_losses)
        self.has_initial_losses.assign(True)

        grad_norms = tf.norm(grads, axis=1)
        weighted_norms = weights * grad_norms
        loss_ratios = tf.math.divide_no_nan(losses, initial_losses)
        inverse_rates = tf.math.divide_no_nan(loss_ratios, tf.reduce_mean(loss_ratios))
        targets = tf.reduce_mean(weighted_norms) * inverse_rates**self.alpha
        weight_grads = tf.sign(weighted_norms - targets) * grad_norms
        new_weights = tf.maximum(weights - self.learning_rate * weight_grads, _MIN_WEIGHT)
        self.write(self.task_weights, tasks, len(tasks) * new_weights / tf.reduce_sum(new_weights))

        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
