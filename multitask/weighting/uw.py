"""UW: uncertainty weighting with learnable log-variances (LibMTL's `UW`)."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry


@registry.register_weighting("uw")
class UncertaintyWeighting(base.LossWeighting):
    """Weighs each task by its learned homoscedastic uncertainty.

    Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
    Losses for Scene Geometry and Semantics", CVPR 2018. Every task has a
    learnable log-variance `s_i = log(sigma_i^2)` and the joint objective is

        combine_losses(L) = sum_i (exp(-s_i) * L_i + s_i),

    minimised over the model AND over `s` (one backward pass). Its weights are
    `w_i = exp(-s_i)`; for fixed losses the optimum over `s_i` is
    `s_i = log(L_i)`, so a task's weight tends to `1 / L_i`.

    `s` is a trainable variable (`log_variances`, initialised to 0, i.e. every
    weight starts at 1 as in EW); the trainer adds `trainable_variables` to its
    optimizer, so `s` is trained with the model at the model's learning rate.

    Hyper-parameters: none.

    Differences from LibMTL: LibMTL minimises
    `sum_i (L_i / (2 * exp(s_i)) + s_i / 2)`, which is exactly half of the
    objective above (the regression form `1 / (2 sigma^2)` of the paper), and
    initialises `s_i = -0.5` (initial weights `exp(0.5) / 2 ~ 0.82`). The
    optimum over `s` is the same (`s_i = log(L_i)`); here the factor 1/2 is
    dropped so that the model's loss weights are `exp(-s_i)` (initially 1, the
    classification form of the paper) and `s` moves twice as fast for the same
    learning rate.
    """

    def __init__(self, num_tasks: int, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          name: The module name.
        """
        super().__init__(num_tasks, name=name)
        self.log_variances = tf.Variable(tf.zeros([num_tasks]), trainable=True, name="log_variances")

    def _loss_weights(self, losses, tasks):
        """Returns `exp(-s)`, the current weights (no gradient to `s`)."""
        del losses
        return tf.exp(-tf.stop_gradient(self.select(self.log_variances, tasks)))

    def _objective(self, losses, tasks):
        """`sum(exp(-s) * losses + s)` over `tasks`, differentiable in losses and `s`."""
        log_variances = self.select(self.log_variances, tasks)
        weights = tf.exp(-log_variances)
        return tf.reduce_sum(weights * losses + log_variances), tf.stop_gradient(weights)
