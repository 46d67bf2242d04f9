"""CAGrad: the update that best improves the worst task near the mean gradient."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry
from multitask.weighting import solvers

RESCALES = (0, 1, 2)


@registry.register_weighting("cagrad")
class CAGrad(base.Weighting):
    """Conflict-Averse Gradient descent (Liu et al., NeurIPS 2021).

    "Conflict-Averse Gradient Descent for Multi-task Learning". With `g0` the
    mean gradient, the update `d` maximises the worst task improvement
    `min_i <g_i, d>` within the ball `||d - g0|| <= c ||g0||`. Its dual is the
    problem on the simplex

        w = argmin_{w in simplex} <g_w, g0> + c ||g0|| sqrt(||g_w||^2 + 1e-8),
        g_w = sum_i w_i g_i,

    solved from the Gram matrix with `solvers.cagrad_weights` (pairwise
    Frank-Wolfe with an exact line search from the uniform weights, as LibMTL
    starts; exact in one step for two tasks). The update is

        d = (g0 + c ||g0|| / (||g_w|| + 1e-8) g_w) / r,

    with `r = 1` (rescale 0), `1 + c^2` (rescale 1) or `1 + c` (rescale 2). It
    is linear in the gradients; the returned weights are its coefficients,
    `(1/T + c ||g0|| w / (||g_w|| + 1e-8)) / r`, so `d = weights @ grads` and
    weights can be reused for `recompute_every` calls. With `c = 0` the
    update is exactly the mean gradient. Parameter gradients only.

    Hyper-parameters (LibMTL's defaults):
      c (LibMTL's `calpha`, default 0.5): the radius of the ball, >= 0.
      rescale (default 1): 0, 1 or 2, as above.

    Differences from LibMTL: the inner problem is solved in TensorFlow instead
    of with scipy's SLSQP (same objective, scaled by the largest squared
    gradient norm, so its `1e-8` is relative); LibMTL adds `1e-8` to
    `c ||g0||`, which is dropped so that `c = 0` gives the mean gradient
    exactly; the returned weights are the update's coefficients, where LibMTL
    returns the inner `w`.
    """

    gradient_kinds = (base.PARAMETER,)

    def __init__(
        self,
        num_tasks: int,
        c: float = 0.5,
        rescale: int = 1,
        recompute_every: int = 1,
        name: Optional[str] = None,
    ):
        """Initializes the method.

        Args:
          num_tasks: T.
          c: The radius of the trust ball around the mean gradient, >= 0.
          rescale: 0, 1 or 2: divide the update by 1, `1 + c^2` or `1 + c`.
          recompute_every: Compute new weights every this many calls.
          name: The module name.

        Raises:
          ValueError: A negative `c` or an unknown `rescale`.
        """
        if float(c) < 0.0:
            raise ValueError(f"weighting.c must be >= 0, got {c!r}.")
        if rescale not in RESCALES or isinstance(rescale, bool):
            raise ValueError(f"weighting.rescale must be one of 0, 1, 2, got {rescale!r}.")
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        self.c = float(c)
        self.rescale = int(rescale)

    def _divisor(self) -> float:
        return (1.0, 1.0 + self.c**2, 1.0 + self.c)[self.rescale]

    def _aggregate(self, losses, grads, tasks):
        del losses
        size = len(tasks)
        gram = tf.matmul(grads, grads, transpose_b=True)
        gram = 0.5 * (gram + tf.transpose(gram))
        uniform = tf.fill([size], 1.0 / size)
        mean_norm = tf.sqrt(tf.maximum(tf.reduce_mean(gram), 0.0))  # ||g0||
        # The inner problem, divided by the largest squared gradient norm.
        scaled = tf.math.divide_no_nan(gram, tf.reduce_max(tf.linalg.diag_part(gram)))
        toward_mean = tf.linalg.matvec(scaled, uniform)  # <g_i, g0>, scaled.
        radius = self.c * tf.sqrt(tf.maximum(tf.reduce_mean(scaled), 0.0))

        inner = solvers.cagrad_weights(scaled, toward_mean, radius) if self.c > 0.0 else uniform
        combined_norm = tf.sqrt(tf.maximum(tf.reduce_sum(inner * tf.linalg.matvec(gram, inner)), 0.0))
        multiplier = self.c * mean_norm / (combined_norm + 1e-8)
        weights = (uniform + multiplier * inner) / self._divisor()
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
