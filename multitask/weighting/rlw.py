"""RLW: random loss weighting, fresh random weights every step (LibMTL's `RLW`)."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry


@registry.register_weighting("rlw")
class RandomLossWeighting(base.LossWeighting):
    """Weighs the tasks by a random softmax draw on every call.

    Lin, Ye, Xu, Shi and Zhang, "Reasonable Effectiveness of Random Weighting:
    A Litmus Test for Multi-Task Learning", TMLR 2022 (arXiv:2111.10603). On
    call number `c` (the `calls` state variable):

        b = T Philox bits from tf.random.stateless_uniform(seed=(seed, c)),
        u = (b >> 8 + 0.5) / 2^24,   z = Phi^-1(u) ~ N(0, I_T),
        w = T * softmax(z).

    The draw is a pure function of `(seed, c)`: the same on every replica, the
    same when a run is repeated or resumed from a checkpoint (which restores
    `calls`), and different from one call to the next. The normal draw is made
    from the raw Philox bits by the inverse normal CDF rather than by
    `tf.random.stateless_normal`, because TensorFlow turns the same bits into
    different floats under XLA (`jit_compile=True`) than in its regular kernels;
    this way eager, graph and XLA runs give the same weights (up to float
    rounding of `ndtri`).

    Hyper-parameters:
      seed: An integer, 0 by default.

    Differences from LibMTL: LibMTL's default (`dist='Normal'`) uses
    `softmax(z)`, whose weights sum to 1; here they are scaled by T so that they
    sum to T like EW's and the other methods' (the expected update size matches
    EW's). LibMTL draws from torch's global generator (not reproducible across
    replicas or resumptions) and also offers Uniform, Dirichlet and Bernoulli
    draws, which are not offered here.
    """

    def __init__(self, num_tasks: int, seed: int = 0, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          seed: The integer seed of the weight draws.
          name: The module name.

        Raises:
          ValueError: A seed that is not an integer.
        """
        super().__init__(num_tasks, name=name)
        if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
            raise ValueError(f"weighting.seed must be a 64-bit integer, got {seed!r}.")
        self.seed = seed

    def _loss_weights(self, losses, tasks):
        """Returns `T * softmax(z)`, `z` drawn from the seed and the call count."""
        del losses
        seed = tf.stack([tf.constant(self.seed, tf.int64), self.calls.read_value()])
        bits = tf.random.stateless_uniform(
            [len(tasks)], seed=seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox"
        )
        # The top 24 bits give a uniform in (0, 1), exact in float32.
        uniform = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * 2.0**-24
        z = tf.math.ndtri(uniform)
        return len(tasks) * tf.nn.softmax(z)
