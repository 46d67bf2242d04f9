"""UPGrad: the mean of the task gradients projected onto their dual cone (TorchJD's)."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import qp
from multitask.weighting import registry


def upgrad_weights(gram: tf.Tensor, norm_eps: float = 1e-4, reg_eps: float = 1e-4, max_iters: int = 100) -> tf.Tensor:
    """UPGrad's task weights from the Gram matrix of the task gradients.

    Args:
      gram: float32 `[T, T]`, `G = grads @ grads^T`, static `T`.
      norm_eps: Below this trace, `G` counts as zero.
      reg_eps: Added to the diagonal of the trace-normalised `G`.
      max_iters: The active-set iterations allowed to each projection.

    Returns:
      float32 `[T]` weights `w`, each `>= 1 / T`, such that `w @ grads` is
      the mean of the projections of the `g_i` onto the dual cone.
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    size = gram.shape[-1]
    trace = tf.linalg.trace(gram)
    normalised = tf.where(trace < norm_eps, tf.zeros_like(gram), gram / tf.maximum(trace, norm_eps))
    regularised = normalised + reg_eps * tf.eye(size)
    projections = qp.lower_bounded_qp(regularised, tf.eye(size) / size, max_iters=max_iters)
    return tf.reduce_sum(projections, axis=0)


@registry.register_weighting("upgrad")
class UPGrad(base.Weighting):
    """Unconflicting Projection of Gradients.

    Quinton and Rey, "Jacobian Descent for Multi-Objective Optimization",
    2024 (arXiv:2406.16232); TorchJD's `UPGrad` aggregator, as used by LibMTL.
    Each task gradient `g_i` is projected onto the dual cone of all task
    gradients, `{x : <g_j, x> >= 0 for all j}`, and the projections are
    averaged. By Proposition 1 of the paper the projection of `J^T u` is
    `J^T v` where `v` solves

        minimize_v  v^T G v   subject to  v >= u,

    `G = J J^T` being the Gram matrix; with `u = e_i / T` for task `i`, the
    weights are `w = sum_i v_i` and the update `w @ grads`. Every projection
    lies in the dual cone, so the result has a non-negative inner product with
    every task gradient (it never conflicts with a task), and where no two
    gradients conflict (`<g_i, g_j> >= 0`) it is their mean. (Exactly so for
    the regularised Gram matrix below; for the gradients themselves
    `<g_j, w @ grads> >= -reg_eps * trace(G) * w_j`.)

    As in TorchJD, `G` is divided by its trace (the squared Frobenius norm of
    the gradients; zero when the trace is below `norm_eps`) and `reg_eps` is
    added to its diagonal to make it positive definite. The T problems are
    solved together by `qp.lower_bounded_qp`, an exact active-set method with
    at most `max_iters` iterations.

    Hyper-parameters (LibMTL's `UPGrad_norm_eps`, `UPGrad_reg_eps`):
      norm_eps: 1e-4.
      reg_eps: 1e-4 (must be > 0: the solver needs a positive definite `G`).
      max_iters: 100, the active-set iterations per solve (ours).

    Differences from LibMTL: the quadratic programs are solved in TensorFlow
    (float32, active set) instead of by `quadprog` in float64 on the host, so
    the step compiles with XLA; and representation gradients are accepted as
    well (LibMTL raises for `rep_grad`), since the method only needs the Gram
    matrix.
    """

    def __init__(
        self,
        num_tasks: int,
        norm_eps: float = 1e-4,
        reg_eps: float = 1e-4,
        max_iters: int = 100,
        recompute_every: int = 1,
        name: Optional[str] = None,
    ):
        """Initializes the method.

        Args:
          num_tasks: T.
          norm_eps: Gram matrices with a smaller trace count as zero.
          reg_eps: The ridge added to the normalised Gram matrix, > 0.
          max_iters: The active-set iterations allowed to each solve.
          recompute_every: Recompute the weights every this many calls.
          name: The module name.

        Raises:
          ValueError: A negative `norm_eps`, a non-positive `reg_eps` or a bad
            `max_iters`.
        """
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        if norm_eps < 0:
            raise ValueError(f"weighting.norm_eps must be >= 0, got {norm_eps!r}.")
        if reg_eps <= 0:
            raise ValueError(f"weighting.reg_eps must be > 0, got {reg_eps!r}.")
        if not isinstance(max_iters, int) or max_iters < 1:
            raise ValueError(f"weighting.max_iters must be a positive integer, got {max_iters!r}.")
        self.norm_eps = float(norm_eps)
        self.reg_eps = float(reg_eps)
        self.max_iters = max_iters

    def _aggregate(self, losses, grads, tasks):
        del losses, tasks
        gram = tf.matmul(grads, grads, transpose_b=True)
        weights = upgrad_weights(gram, self.norm_eps, self.reg_eps, self.max_iters)
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
