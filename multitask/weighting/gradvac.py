"""GradVac: steer each pair of task gradients toward a moving target cosine."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry
from multitask.weighting import stateless_random

_EPSILON = 1e-8


@registry.register_weighting("gradvac")
class GradVac(base.Weighting):
    """Gradient Vaccine (Wang et al., ICLR 2021).

    "Gradient Vaccine: Investigating and Improving Multi-task Optimization in
    Massively Multilingual Models". Each ordered task pair (i, j) has a target
    cosine similarity `phi_ij` (a `[T, T]` state variable, zero at the start).
    For every task i, start from `p_i = g_i` and visit the other tasks j in a
    random order; with `rho = cos(p_i, g_j)`, if `rho < phi_ij` add

        ||p_i|| (phi_ij sqrt(1 - rho^2) - rho sqrt(1 - phi_ij^2))
        / (||g_j|| sqrt(1 - phi_ij^2)) * g_j

    to `p_i` (which raises its cosine with `g_j` to `phi_ij`), then update the
    target by the exponential moving average

        phi_ij <- (1 - beta) phi_ij + beta rho.

    The update is `sum_i p_i`. As for PCGrad, each `p_i` is a linear
    combination of the original gradients, computed on the Gram matrix alone,
    and the method returns `weights @ grads` with `weights` the coefficient
    column sums. Linear, so weights can be reused for `recompute_every` calls
    (the targets then move only on the calls that recompute). Parameter
    gradients only.

    Hyper-parameters:
      beta (default 0.5, as LibMTL): the EMA rate of the targets.
      seed (default 0): the visiting orders are drawn by
        `stateless_random.random_permutations(seed, calls)`.

    Differences from LibMTL: the targets follow the paper's EMA on every
    visit, whereas LibMTL updates a target only when `rho < phi_ij` (so its
    targets can only decrease from 0); one target per task pair for the whole
    model (LibMTL's default `GradVac_group_type=0`; its per-layer groups are
    not offered); the random order is a pure function of `(seed, calls)`
    instead of Python's global `random`.
    """

    gradient_kinds = (base.PARAMETER,)

    def __init__(
        self,
        num_tasks: int,
        beta: float = 0.5,
        seed: int = 0,
        recompute_every: int = 1,
        name: Optional[str] = None,
    ):
        """Initializes the method.

        Args:
          num_tasks: T.
          beta: The EMA rate of the target cosines, in [0, 1].
          seed: The seed of the random visiting orders.
          recompute_every: Compute new weights every this many calls.
          name: The module name.

        Raises:
          ValueError: `beta` outside [0, 1] or a non-integer `seed`.
        """
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"weighting.beta must be in [0, 1], got {beta!r}.")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"weighting.seed must be an integer, got {seed!r}.")
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        self.beta = float(beta)
        self.seed = seed
        self.targets = self.state_variable(tf.zeros([num_tasks, num_tasks]), "targets")

    def _aggregate(self, losses, grads, tasks):
        del losses
        size = len(tasks)
        gram = tf.matmul(grads, grads, transpose_b=True)
        # Cosines and projection coefficients do not depend on the scale.
        gram = tf.math.divide_no_nan(gram, tf.reduce_max(tf.linalg.diag_part(gram)))
        norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))
        orders = stateless_random.random_permutations(size, size, self.seed, self.calls)
        rows = tf.range(size)
        coefficients = tf.eye(size)  # Row i: p_i = coefficients[i] @ grads.
        targets = self.select(self.targets, tasks, axes=2)
        for position in range(size):
            partner = orders[:, position]
            visit = tf.not_equal(partner, rows)  # Each row skips itself.
            pair = tf.stack([rows, partner], axis=1)
            target = tf.gather_nd(targets, pair)
            products = tf.matmul(coefficients, gram)
            dots = tf.gather(products, partner, batch_dims=1)
            own_norms = tf.sqrt(tf.maximum(tf.reduce_sum(products * coefficients, axis=1), 0.0))
            partner_norms = tf.gather(norms, partner)
            cosine = dots / (own_norms * partner_norms + _EPSILON)
            target_sine = tf.sqrt(tf.maximum(1.0 - target * target, 0.0))
            shift = (
                own_norms
                * (target * tf.sqrt(tf.maximum(1.0 - cosine * cosine, 0.0)) - cosine * target_sine)
                / (partner_norms * target_sine + _EPSILON)
            )
            adjust = visit & (cosine < target) & (own_norms > 0.0) & (partner_norms > 0.0)
            coefficients += tf.where(adjust, shift, 0.0)[:, None] * tf.one_hot(partner, size)
            moved = (1.0 - self.beta) * target + self.beta * cosine
            targets = tf.tensor_scatter_nd_update(targets, pair, tf.where(visit, moved, target))
        self.write(self.targets, tasks, targets, axes=2)
        weights = tf.reduce_sum(coefficients, axis=0)
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
