"""Nash-MTL: task weights from the Nash bargaining solution (LibMTL's `Nash_MTL`)."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry

# Added to the unit diagonal of the cosine matrix; bounds beta by about
# 1 / sqrt(_RIDGE) when the bargaining problem has no solution.
_RIDGE = 1e-6


def bargaining_weights(gram: tf.Tensor, num_iters: int = 20) -> tf.Tensor:
    """The positive `alpha` solving `(G alpha) * alpha = 1` componentwise.

    This is the stationarity condition of the strictly convex problem

        minimize_{alpha > 0}  0.5 * alpha^T G alpha - sum_i log(alpha_i),

    solved by `num_iters` damped Newton steps. Substituting
    `alpha_i = beta_i / ||g_i||` turns the equation into `(C beta) * beta = 1`
    with `C` the cosine matrix of the gradients, so the solve does not depend
    on the gradients' scales. Each step is the self-concordant damped Newton
    step `beta <- beta - H^-1 r / (1 + lambda)` (`r` the gradient, `H` the
    Hessian, `lambda` the Newton decrement), which keeps `beta` positive,
    followed by the exact minimisation of the objective along the ray through
    `beta` (`beta <- beta * sqrt(T / beta^T C beta)`), which fixes the overall
    scale at once. A step that produces a non-finite or non-positive `beta`
    (possible only through rounding when the problem has no solution) is
    skipped.

    When the gradients admit no direction that improves every task (e.g. two
    opposite gradients) the equation has no solution: `beta` then grows with
    the steps but stays finite, and `max_norm` bounds the update. Tasks with a
    zero gradient
    cannot satisfy the equation; they get weight 0 and do not affect the
    others.

    Args:
      gram: float32 `[T, T]`, `G = grads @ grads^T`, static `T`.
      num_iters: The number of Newton steps.

    Returns:
      float32 `[T]` non-negative weights `alpha`.
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    gram = 0.5 * (gram + tf.transpose(gram))
    size = gram.shape[-1]
    eye = tf.eye(size)
    squared_norms = tf.linalg.diag_part(gram)
    present = squared_norms > 0.0
    inverse_norms = tf.where(present, tf.math.rsqrt(tf.where(present, squared_norms, 1.0)), 0.0)
    both = tf.logical_and(present[:, None], present[None, :])
    # Tasks without a gradient become decoupled unit tasks (their beta is 1).
    cosines = tf.where(both, gram * inverse_norms[:, None] * inverse_norms[None, :], eye)
    cosines = cosines + _RIDGE * eye

    def rescale(beta):
        quadratic = tf.reduce_sum(beta * tf.linalg.matvec(cosines, beta))
        return tf.where(quadratic > 0.0, beta * tf.sqrt(size / tf.where(quadratic > 0.0, quadratic, 1.0)), beta)

    def body(iteration, beta):
        residual = tf.linalg.matvec(cosines, beta) - 1.0 / beta
        hessian = cosines + tf.linalg.diag(1.0 / (beta * beta))
        step = tf.linalg.cholesky_solve(tf.linalg.cholesky(hessian), residual[:, None])[:, 0]
        decrement = tf.sqrt(tf.maximum(tf.reduce_sum(residual * step), 0.0))
        candidate = rescale(beta - step / (1.0 + decrement))
        valid = tf.logical_and(tf.reduce_all(tf.math.is_finite(candidate)), tf.reduce_all(candidate > 0.0))
        return iteration + 1, tf.where(valid, candidate, beta)

    beta = rescale(tf.ones([size]))
    _, beta = tf.while_loop(
        lambda iteration, beta: iteration < num_iters, body, (tf.constant(0), beta), maximum_iterations=num_iters
    )
    return beta * inverse_norms


@registry.register_weighting("nash_mtl")
class NashMTL(base.Weighting):
    """Multi-task learning as a bargaining game.

    Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022. The
    update `d = sum_i alpha_i g_i` is the Nash bargaining solution among the
    tasks (the maximiser of `sum_i log <g_i, d>` in a ball), characterised by

        G alpha = 1 / alpha,   alpha > 0,   G = grads @ grads^T,

    i.e. `(G alpha)_i * alpha_i = 1` for every task. The combined gradient is
    then clipped to the norm `max_norm`; the returned weights include that
    factor, so `combined == weights @ grads` always holds.

    Hyper-parameters (LibMTL's names and defaults):
      update_weights_every: 1. Solve for new weights every this many calls and
        reuse the last `alpha` in between (the base class's
        `recompute_every`); the clipping is applied on every call.
      optim_niter: 20, the number of Newton steps of `bargaining_weights`.
      max_norm: 1.0; 0 (or less) disables the clipping, as in LibMTL.

    Only parameter gradients are accepted (as in LibMTL, whose clipping acts
    on the shared parameters).

    Differences from LibMTL: LibMTL solves the equation with cvxpy/ECOS,
    running up to `optim_niter` rounds of a convex-concave procedure (each a
    conic program with the objective linearised around the last `alpha`),
    warm-started from the previous step's `alpha`, in float64 on the host.
    Here the equation is the stationarity condition of a strictly convex
    function, minimised with `optim_niter` damped Newton steps in float32
    TensorFlow from a cold start (so the step compiles with XLA and keeps no
    solver state). LibMTL clips the global norm of the shared parameters'
    gradient (`clip_grad_norm_`) after the backward pass; here the combined
    flattened gradient of the shared parameters is clipped, which is the same
    operation. Tasks with a zero gradient get weight 0 (LibMTL's solver fails
    and reuses the previous weights).
    """

    gradient_kinds = (base.PARAMETER,)
    linear = True

    def __init__(
        self,
        num_tasks: int,
        update_weights_every: int = 1,
        optim_niter: int = 20,
        max_norm: float = 1.0,
        name: Optional[str] = None,
    ):
        """Initializes the method.

        Args:
          num_tasks: T.
          update_weights_every: Solve for new weights every this many calls.
          optim_niter: The number of Newton steps per solve.
          max_norm: Clip the combined gradient to this norm; <= 0 disables.
          name: The module name.

        Raises:
          ValueError: A bad `update_weights_every` or `optim_niter`.
        """
        if not isinstance(update_weights_every, int) or update_weights_every < 1:
            raise ValueError(
                f"weighting.update_weights_every must be an integer >= 1, got {update_weights_every!r}."
            )
        if not isinstance(optim_niter, int) or optim_niter < 1:
            raise ValueError(f"weighting.optim_niter must be an integer >= 1, got {optim_niter!r}.")
        super().__init__(num_tasks, recompute_every=update_weights_every, name=name)
        self.update_weights_every = update_weights_every
        self.optim_niter = optim_niter
        self.max_norm = float(max_norm)

    def aggregate(self, losses, grads, tasks=None):
        """Combines the task gradients and clips the result to `max_norm`.

        Args:
          losses: float32 `[A]`, the (weighted) losses of the tasks `tasks`.
          grads: float32 `[A, D]`, their gradients, flattened.
          tasks: Their indices in task order; None means all T.

        Returns:
          `(combined [D], weights [A])` with `combined == weights @ grads`.
          `last_weights` keeps the unclipped `alpha` that later calls reuse.
        """
        combined, weights = super().aggregate(losses, grads, tasks)
        if self.max_norm > 0.0:
            factor = self.max_norm / tf.maximum(tf.norm(combined), self.max_norm)
            combined, weights = combined * factor, weights * factor
        return combined, weights

    def _aggregate(self, losses, grads, tasks):
        del losses, tasks
        alpha = bargaining_weights(tf.matmul(grads, grads, transpose_b=True), self.optim_niter)
        return tf.linalg.matvec(grads, alpha, transpose_a=True), alpha
