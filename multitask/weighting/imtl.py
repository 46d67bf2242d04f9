"""IMTL: impartial multi-task learning, IMTL-G's gradient balance in closed form and IMTL-L's learned loss scales."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry


def imtl_weights(gram: tf.Tensor) -> tf.Tensor:
    """IMTL-G's weights from the Gram matrix of the task gradients.

    Finds `alpha` with `sum(alpha) = 1` such that `g = sum_i alpha_i g_i` has
    the same projection on every unit gradient `u_i = g_i / ||g_i||`:
    with `D` the rows `g_1 - g_i` and `U` the rows `u_1 - u_i` (`i >= 2`),
    `alpha[1:] = (g_1 U^T) (D U^T)^+` and `alpha_1 = 1 - sum(alpha[1:])`.
    Every inner product is read from `G`, so no `[T, D]` temporaries are made.

    Args:
      gram: float32 `[T, T]`, `G = grads @ grads^T`, static `T`.

    Returns:
      float32 `[T]` weights summing to 1.
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    size = gram.shape[-1]
    if size == 1:
        return tf.ones([1])
    norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))
    # products[i, j] = <g_i, u_j>; zero gradients have a zero unit vector.
    products = tf.math.divide_no_nan(gram, norms[None, :])
    # <g_1, u_1 - u_j> for j >= 2.
    first = products[0, 0] - products[0, 1:]
    # <g_1 - g_i, u_1 - u_j> for i, j >= 2.
    cross = (
        products[0, 0] - products[0, 1:][None, :] - products[1:, 0][:, None] + products[1:, 1:]
    )
    # alpha[1:] solves alpha[1:] @ cross = first; the pseudo-inverse keeps
    # parallel gradients (a singular `cross`) finite.
    rest = tf.linalg.matvec(tf.linalg.pinv(cross), first, transpose_a=True)
    return tf.concat([[1.0 - tf.reduce_sum(rest)], rest], axis=0)


@registry.register_weighting("imtl")
class IMTL(base.Weighting):
    """Impartial multi-task learning: IMTL-G, and IMTL-L with `loss_balance`.

    Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021.

    IMTL-G (gradient balance): the combined gradient `g = sum_i alpha_i g_i`,
    with `sum_i alpha_i = 1`, is the one whose projections onto the unit task
    gradients are all equal, `<g, u_i> = <g, u_j>`, so no task dominates the
    update's direction; the weights have the closed form of `imtl_weights`.
    Only the Gram matrix of the gradients is needed, so parameter and
    representation gradients both work.

    IMTL-L (loss balance, `loss_balance=True`): each task has a learned loss
    scale `s_i` (`loss_scales`, initialised to 0) and its loss becomes
    `exp(s_i) * L_i - s_i` (`transform_losses`); IMTL-G balances the
    gradients of these scaled losses, and the trainer's optimizer trains `s`
    by the gradient of their sum, `exp(s_i) * L_i - 1`. Its fixed point is
    `s_i = -log(L_i)`: every scaled loss tends to 1, so a task's update no
    longer depends on the scale of its loss. The summaries' `weight` is IMTL-G's
    `alpha_i`, applied to the scaled loss.

    Hyper-parameters: `loss_balance` (default False: IMTL-G alone) and
    `recompute_every` (the weights are linear in the gradients, so they can
    be reused between recomputations; `s` trains at every step).

    Differences from LibMTL: LibMTL's `IMTL` holds IMTL-L's scales `s` as a
    plain tensor that no optimizer updates, so they stay 0 and its losses are
    unscaled; here `loss_balance` trains them as the paper does. The inverse
    of `D U^T` is a pseudo-inverse here (LibMTL calls `torch.inverse`, which
    fails when two gradients are parallel).
    """

    def __init__(self, num_tasks: int, loss_balance: bool = False, recompute_every: int = 1,
                 name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          loss_balance: Also learn IMTL-L's loss scales.
          recompute_every: Compute new weights every this many calls.
          name: The module name.

        Raises:
          ValueError: A `loss_balance` that is not a bool.
        """
        if not isinstance(loss_balance, bool):
            raise ValueError(f"weighting.loss_balance must be true or false, got {loss_balance!r}.")
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        self.loss_balance = loss_balance
        if loss_balance:
            self.loss_scales = tf.Variable(tf.zeros([num_tasks]), trainable=True, name="loss_scales")

    def transform_losses(self, losses, tasks=None):
        """`exp(s) * losses - s` with `loss_balance`, else `losses`."""
        if not self.loss_balance:
            return losses
        scales = self.select(self.loss_scales, self.task_indices(tasks))
        return tf.exp(scales) * losses - scales

    def _aggregate(self, losses, grads, tasks):
        del losses, tasks
        weights = imtl_weights(tf.matmul(grads, grads, transpose_b=True))
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
