"""PCGrad: project each task gradient off the gradients it conflicts with."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry
from multitask.weighting import stateless_random


@registry.register_weighting("pcgrad")
class PCGrad(base.Weighting):
    """Projecting Conflicting Gradients (Yu et al., NeurIPS 2020).

    "Gradient Surgery for Multi-Task Learning". For every task i, start from
    `p_i = g_i` and visit the tasks j in a random order; whenever
    `<p_i, g_j> < 0`, project `p_i` onto the normal plane of `g_j`:

        p_i <- p_i - <p_i, g_j> / ||g_j||^2 * g_j.

    The update is `sum_i p_i`. Each `p_i` is a linear combination of the
    original gradients, so the method tracks the `[T, T]` coefficients on the
    Gram matrix alone and returns the update as `weights @ grads` with
    `weights` the coefficient column sums (the weight each original gradient
    ends up with). Linear, so weights can be reused for `recompute_every`
    calls. Parameter gradients only.

    Hyper-parameters:
      seed (default 0): the task orders are drawn (one permutation per task i)
        by `stateless_random.random_permutations(seed, calls)`, so a run is
        reproducible and identical eagerly and under XLA.

    Differences from LibMTL: LibMTL shuffles with Python's global `random`;
    here the order is a pure function of `(seed, calls)`. Working on the Gram
    matrix gives the same result up to float rounding, at `O(T^2 D)` cost.
    As in LibMTL (and the authors' code) the loop visits j = i too, which only
    matters if a projection made `<p_i, g_i>` negative. Weights are not
    non-negative in general and do not sum to one.
    """

    gradient_kinds = (base.PARAMETER,)

    def __init__(self, num_tasks: int, seed: int = 0, recompute_every: int = 1, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          seed: The seed of the random task orders.
          recompute_every: Compute new weights every this many calls.
          name: The module name.

        Raises:
          ValueError: A non-integer `seed`.
        """
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"weighting.seed must be an integer, got {seed!r}.")
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        self.seed = seed

    def _aggregate(self, losses, grads, tasks):
        del losses
        size = len(tasks)
        gram = tf.matmul(grads, grads, transpose_b=True)
        # Cosines and projection coefficients do not depend on the scale.
        gram = tf.math.divide_no_nan(gram, tf.reduce_max(tf.linalg.diag_part(gram)))
        squared_norms = tf.linalg.diag_part(gram)
        orders = stateless_random.random_permutations(size, size, self.seed, self.calls)
        coefficients = tf.eye(size)  # Row i: p_i = coefficients[i] @ grads.
        for position in range(size):
            partner = orders[:, position]  # [T]: the task each row visits now.
            dots = tf.gather(tf.matmul(coefficients, gram), partner, batch_dims=1)
            shift = tf.where(dots < 0.0, tf.math.divide_no_nan(dots, tf.gather(squared_norms, partner)), 0.0)
            coefficients -= shift[:, None] * tf.one_hot(partner, size)
        weights = tf.reduce_sum(coefficients, axis=0)
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
