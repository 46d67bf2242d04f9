"""IMTL: impartial multi-task learning, gradient balancing in closed form (LibMTL's `IMTL`)."""
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
    """Impartial multi-task learning (IMTL-G).

    Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021. The
    combined gradient `g = sum_i alpha_i g_i`, with `sum_i alpha_i = 1`, is the
    one whose projections onto the unit task gradients are all equal,
    `<g, u_i> = <g, u_j>`, so no task dominates the update's direction; the
    weights have the closed form of `imtl_weights`. Only the Gram matrix of the
    gradients is needed, so parameter and representation gradients both work.

    Hyper-parameters: none besides `recompute_every` (the weights are linear
    in the gradients, so they can be reused between recomputations).

    Differences from LibMTL: LibMTL's `IMTL` also holds IMTL-L's loss scales
    `s` (losses become `exp(s) * L - s`), but `s` is a plain tensor that no
    optimizer updates, so it stays 0 and the scaled losses equal the losses;
    that inert part is left out here (IMTL-L proper would train `s`, and
    scaling a task's loss changes only the length of IMTL-G's update, not its
    direction). The inverse of `D U^T` is a pseudo-inverse here (LibMTL calls
    `torch.inverse`, which fails when two gradients are parallel).
    """

    def _aggregate(self, losses, grads, tasks):
        del losses, tasks
        weights = imtl_weights(tf.matmul(grads, grads, transpose_b=True))
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
