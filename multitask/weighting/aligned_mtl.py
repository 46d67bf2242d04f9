"""Aligned-MTL: task gradients aligned to condition number 1 (LibMTL's `Aligned_MTL`)."""
import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry

_FLOAT32_EPS = 2.0 ** -23


def alignment_matrix(gram: tf.Tensor) -> tf.Tensor:
    """Aligned-MTL's `[T, T]` matrix `B` from the Gram matrix of the gradients.

    With `G = V diag(lambda) V^T` restricted to the eigenvalues above
    `max(lambda) * T * eps` (float32 `eps`, numpy's rank tolerance),
    `B = sqrt(lambda_min) V diag(lambda^(-1/2)) V^T`, `lambda_min` being the
    smallest eigenvalue kept. The rows of `B @ grads` are then orthogonal with
    the common norm `sqrt(lambda_min)` within the span of the gradients (their
    Gram matrix is `lambda_min V V^T`): the aligned gradients have condition
    number 1.

    Args:
      gram: float32 `[T, T]`, `G = grads @ grads^T`, static `T`.

    Returns:
      float32 `[T, T]` symmetric `B` (all zeros when every gradient is zero).
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    size = gram.shape[-1]
    gram = 0.5 * (gram + tf.transpose(gram))
    eigenvalues, eigenvectors = tf.linalg.eigh(gram)
    tolerance = tf.reduce_max(eigenvalues) * size * _FLOAT32_EPS
    kept = eigenvalues > tolerance
    inverse_sqrt = tf.where(kept, tf.math.rsqrt(tf.where(kept, eigenvalues, 1.0)), 0.0)
    smallest = tf.reduce_min(tf.where(kept, eigenvalues, float("inf")))
    scale = tf.where(tf.reduce_any(kept), tf.sqrt(tf.where(tf.reduce_any(kept), smallest, 0.0)), 0.0)
    return scale * tf.matmul(eigenvectors * inverse_sqrt[None, :], eigenvectors, transpose_b=True)


@registry.register_weighting("aligned_mtl")
class AlignedMTL(base.Weighting):
    """Aligned-MTL.

    Senushkin et al., "Independent Component Alignment for Multi-Task
    Learning", CVPR 2023. The stability of the gradient system is measured by
    the condition number of the task gradients; Aligned-MTL replaces them by
    `B @ grads` (see `alignment_matrix`), whose condition number is 1 and
    whose scale is set by the smallest singular value (`sqrt(lambda_min)`),
    and applies their sum:

        weights = B.sum(axis=0),   combined = weights @ grads.

    Eigenvalues of `G` at or below `max(lambda) * T * eps` are dropped, so
    rank-deficient gradients (e.g. more tasks than directions) stay finite.
    Only the Gram matrix is needed, so parameter and representation gradients
    both work.

    Hyper-parameters: none besides `recompute_every` (the update is linear in
    the gradients).

    Differences from LibMTL: none in the result (LibMTL sorts the eigenvalues
    and slices the kept ones; masks keep the shapes static here). With all
    gradients zero the weights are zero instead of an indexing error.
    """

    def _aggregate(self, losses, grads, tasks):
        del losses, tasks
        matrix = alignment_matrix(tf.matmul(grads, grads, transpose_b=True))
        weights = tf.reduce_sum(matrix, axis=0)
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
