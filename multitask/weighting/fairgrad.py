"""FairGrad: alpha-fair allocation of the update among the tasks."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry
from multitask.weighting import solvers


@registry.register_weighting("fairgrad")
class FairGrad(base.Weighting):
    """FairGrad (Ban & Ji, ICML 2024).

    "Fair Resource Allocation in Multi-Task Learning". The update
    `d = G^T w` (with `G` the `[T, D]` task gradients) gives task i the
    "utility" `<g_i, d>`; maximising the alpha-fair sum of utilities within a
    ball leads to weights `w > 0` solving

        G G^T w = w^(-1 / alpha)

    (element-wise power), which `solvers.alpha_fair_weights` solves by damped
    Newton steps (at most 50, stopping on a relative residual of 1e-6). The
    update is `w @ grads`; the weights are positive but not normalised.
    Linear, so weights can be reused for `recompute_every` calls. Parameter
    gradients only.

    Hyper-parameters:
      alpha (default 1.0, LibMTL's `FairGrad_alpha`): > 0. `alpha = 1` is
        proportional fairness (Nash-MTL's equation `G G^T w = 1 / w`); large
        values approach max-min fairness.

    Differences from LibMTL: LibMTL solves the same equation with scipy's
    bounded `least_squares` from `1/T`; here it is solved in TensorFlow as the
    minimum of a strictly convex function, with a relative ridge of 1e-8 on
    `G G^T` (so a task with a zero gradient gets a large finite weight).
    """

    gradient_kinds = (base.PARAMETER,)

    def __init__(self, num_tasks: int, alpha: float = 1.0, recompute_every: int = 1, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          alpha: The fairness exponent, > 0.
          recompute_every: Compute new weights every this many calls.
          name: The module name.

        Raises:
          ValueError: A non-positive `alpha`.
        """
        if not float(alpha) > 0.0:
            raise ValueError(f"weighting.alpha must be > 0, got {alpha!r}.")
        super().__init__(num_tasks, recompute_every=recompute_every, name=name)
        self.alpha = float(alpha)

    def _aggregate(self, losses, grads, tasks):
        del losses, tasks
        weights = solvers.alpha_fair_weights(tf.matmul(grads, grads, transpose_b=True), self.alpha)
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights
