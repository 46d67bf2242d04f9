"""DB-MTL: dual balancing of loss scales and gradient magnitudes (LibMTL's `DB_MTL`)."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry

_EPS = 1e-8


@registry.register_weighting("db_mtl")
class DBMTL(base.Weighting):
    """Dual-Balancing Multi-Task Learning.

    Lin et al., "Dual-Balancing for Multi-Task Learning", 2023
    (arXiv:2308.12029). Two balances:

    - loss scales: each task minimises `log(L_i + 1e-8)`, whose gradient is
      `g_i / (L_i + 1e-8)` (computed here from the given losses and
      gradients, without another backward pass);
    - gradient magnitudes: an exponential moving average `m_i` of those
      log-loss gradients, with a decay that shrinks over the steps,

          m_i <- h_i + beta_t * (m_i - h_i),   beta_t = beta / t^beta_sigma,

      (`t` = 1, 2, ... the call count, `m` starting at zero), is rescaled to
      the largest norm among the tasks:

          weights_i = max_j ||m_j|| / (||m_i|| + 1e-8),
          combined = sum_i weights_i * m_i.

    `m` is a `[T, D]` state variable (`grad_buffer`), saved with the
    checkpoint. `D` is unknown until the first gradients arrive, so the buffer
    is created on the first `aggregate` (under `tf.init_scope`, which works
    eagerly, in `tf.function` and in a `tf.distribute` replica context) unless
    `build(grad_dim)` was called first; restoring a checkpoint before the
    first step fills it when it is created. The combined gradient depends on
    past steps, so it is not `weights @ grads` (`linear = False`), and only
    parameter gradients are accepted: representation gradients change meaning
    from batch to batch, so averaging them over steps is meaningless (LibMTL
    refuses `rep_grad` too). The losses must be positive (logarithm).

    Hyper-parameters (LibMTL's `DB_beta`, `DB_beta_sigma`, with LibMTL's
    defaults):
      beta: 0.9, in [0, 1].
      beta_sigma: 0.0 (a constant decay `beta`), >= 0; e.g. 0.5 makes the
        average forget its past faster as `t` grows.

    Differences from LibMTL: the returned weights are the rescaling factors
    `weights_i` above (LibMTL reports ones). Everything else, epsilons
    included, is LibMTL's algorithm.
    """

    gradient_kinds = (base.PARAMETER,)
    linear = False

    def __init__(self, num_tasks: int, beta: float = 0.9, beta_sigma: float = 0.0, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          beta: The moving average's decay at step 1, in [0, 1].
          beta_sigma: The decay at step t is `beta / t^beta_sigma`; >= 0.
          name: The module name.

        Raises:
          ValueError: `beta` outside [0, 1] or a negative `beta_sigma`.
        """
        super().__init__(num_tasks, name=name)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"weighting.beta must be in [0, 1], got {beta!r}.")
        if beta_sigma < 0.0:
            raise ValueError(f"weighting.beta_sigma must be >= 0, got {beta_sigma!r}.")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        self.grad_buffer = None

    def build(self, grad_dim: int) -> None:
        """Creates the zero `[T, grad_dim]` moving-average buffer if it is missing.

        Args:
          grad_dim: D, the length of each task's flattened gradient.

        Raises:
          ValueError: The buffer exists with another `grad_dim`.
        """
        grad_dim = int(grad_dim)
        if self.grad_buffer is not None:
            if self.grad_buffer.shape[-1] != grad_dim:
                raise ValueError(
                    f"db_mtl was built for gradients of length {self.grad_buffer.shape[-1]}, got {grad_dim}."
                )
            return
        with tf.init_scope():
            self.grad_buffer = self.state_variable(tf.zeros([self.num_tasks, grad_dim]), "grad_buffer")

    def _aggregate(self, losses, grads, tasks):
        grad_dim = grads.shape[-1]
        if grad_dim is None:
            raise ValueError(f"db_mtl needs gradients with a static length, got shape {grads.shape}.")
        self.build(grad_dim)
        step = tf.cast(self.calls + 1, tf.float32)
        decay = self.beta / tf.pow(step, self.beta_sigma)
        log_grads = grads / (losses + _EPS)[:, None]
        buffer = log_grads + decay * (self.select(self.grad_buffer, tasks) - log_grads)
        self.write(self.grad_buffer, tasks, buffer)
        norms = tf.norm(buffer, axis=1)
        weights = tf.reduce_max(norms) / (norms + _EPS)
        return tf.linalg.matvec(buffer, weights, transpose_a=True), weights
