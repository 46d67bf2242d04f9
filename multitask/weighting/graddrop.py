"""GradDrop: keep, per coordinate, only the gradients of one randomly chosen sign."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry
from multitask.weighting import stateless_random


@registry.register_weighting("graddrop")
class GradDrop(base.Weighting):
    """Gradient Sign Dropout (Chen et al., NeurIPS 2020).

    "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
    Dropout". Applied to the gradients with respect to the shared
    representation. For every coordinate k, the sign purity

        P_k = 0.5 * (1 + sum_i g_ik / (sum_i |g_ik| + 1e-7))

    is the chance of keeping the positive gradients there: with `U_k` uniform
    in [0, 1), task i's mask is `M_ik = (P_k > U_k and g_ik > 0) or
    (P_k < U_k and g_ik < 0)`, and the update is

        sum_i (leak + (1 - leak) M_i) * g_i.

    Not linear (the masks differ per coordinate), so `recompute_every` is not
    offered; the returned weights are ones (every masked task gradient enters
    the sum once). Representation gradients only.

    Hyper-parameters:
      leak (default 0.0, as LibMTL): in [0, 1], the fraction of each dropped
        gradient that is kept anyway (1 gives the plain sum).
      seed (default 0): `U` is `stateless_random.stateless_uniform(seed, calls)`, so
        a run is reproducible and identical eagerly and under XLA.

    Differences from LibMTL: the purity is computed per coordinate of the
    flattened representation gradient `[T, D]` the trainer passes (the
    paper's per-activation rule); LibMTL first sums the per-example gradients
    over the batch after multiplying them by the sign of the representation,
    which needs the representation values and the batch axis that the
    `aggregate(losses, grads)` contract does not carry. The uniform numbers
    come from `(seed, calls)` instead of torch's global generator.
    """

    gradient_kinds = (base.REPRESENTATION,)
    linear = False

    def __init__(self, num_tasks: int, leak: float = 0.0, seed: int = 0, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          leak: The kept fraction of dropped gradients, in [0, 1].
          seed: The seed of the random masks.
          name: The module name.

        Raises:
          ValueError: `leak` outside [0, 1] or a non-integer `seed`.
        """
        if not 0.0 <= float(leak) <= 1.0:
            raise ValueError(f"weighting.leak must be in [0, 1], got {leak!r}.")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"weighting.seed must be an integer, got {seed!r}.")
        super().__init__(num_tasks, name=name)
        self.leak = float(leak)
        self.seed = seed

    def _aggregate(self, losses, grads, tasks):
        del losses, tasks
        purity = 0.5 * (1.0 + tf.reduce_sum(grads, axis=0) / (tf.reduce_sum(tf.abs(grads), axis=0) + 1e-7))
        uniform = stateless_random.stateless_uniform(tf.shape(purity), self.seed, self.calls)
        keep_positive = (purity > uniform)[None, :] & (grads > 0.0)
        keep_negative = (purity < uniform)[None, :] & (grads < 0.0)
        mask = tf.cast(keep_positive | keep_negative, tf.float32)
        combined = tf.reduce_sum(grads * (self.leak + (1.0 - self.leak) * mask), axis=0)
        return combined, tf.ones([tf.shape(grads)[0]])
