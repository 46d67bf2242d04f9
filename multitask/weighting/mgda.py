"""MGDA: the min-norm point of the convex hull of the task gradients."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry
from multitask.weighting import solvers

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@registry.register_weighting("mgda")
class MGDA(base.Weighting):
    """Multiple Gradient Descent Algorithm (Sener & Koltun, NeurIPS 2018).

    "Multi-Task Learning as Multi-Objective Optimization". Each task gradient
    `g_i` is first divided by a normaliser `n_i`; the weights are the
    min-norm point of the convex hull of the normalised gradients,

        w = argmin_{w in simplex} || sum_i w_i g_i / n_i ||^2,

    found from their Gram matrix by `solvers.min_norm_weights` (exact for two
    tasks, pairwise Frank-Wolfe otherwise). The update is `w @ grads`: the
    simplex weights are applied to the **raw** gradients, as in Sener &
    Koltun's reference code (which rescales the raw losses) and LibMTL's
    representation-gradient path. LibMTL's parameter-gradient path applies
    them to the normalised gradients instead; the two agree for the default
    `normalization="none"`.

    Normalisers (LibMTL's `mgda_gn`): "none" `n_i = 1`; "l2" `n_i = ||g_i||`;
    "loss" `n_i = L_i`; "loss+" `n_i = L_i ||g_i||`. A zero normaliser leaves
    that gradient at zero instead of dividing by zero.

    Accepts parameter and representation gradients; linear, so weights can be
    reused for `recompute_every` calls.

    Differences from LibMTL: the two-task closed form is exact (LibMTL clamps
    the weight to [0.001, 0.999]); more than two tasks are solved by pairwise
    Frank-Wolfe (at most 1000 steps, stopping on the KKT gap) instead of
    LibMTL's projected-gradient iteration; weights apply to raw gradients (see
    above).
    """

    def __init__(
        self,
        num_tasks: int,
        normalization: str = "none",
        recompute_every: int = 1,
        name: Optional[str] = None,
    ):
        """Initializes the method.

        Args:
          num_tasks: T.
          normalization: "none" (default), "l2", "loss" or "loss+".
          recompute_every: Solve for new weights every this many calls.
          name: The module name.

        Raises:
          ValueError: An unknown `normalization`.
        """
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"weighting.normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}."
            )
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        self.normalization = normalization

    def _normalizers(self, losses: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        if self.normalization == "none":
            return tf.ones_like(losses)
        if self.normalization == "loss":
            return losses
        norms = tf.norm(grads, axis=-1)
        if self.normalization == "l2":
            return norms
        return losses * norms

    def _aggregate(self, losses, grads, tasks):
        del tasks
        scaled = tf.math.divide_no_nan(grads, self._normalizers(losses, grads)[:, None])
        weights = solvers.min_norm_weights(tf.matmul(scaled, scaled, transpose_b=True))
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
