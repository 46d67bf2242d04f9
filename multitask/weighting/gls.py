"""GLS: the geometric loss strategy, the geometric mean of the losses (LibMTL's `GLS`)."""
import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry


@registry.register_weighting("gls")
class GeometricLossStrategy(base.LossWeighting):
    """Minimises the geometric mean of the task losses.

    Chennupati, Sistu, Yogamani and Rawashdeh, "MultiNet++: Multi-Stream
    Feature Aggregation and Geometric Loss Strategy for Multi-Task Learning",
    CVPR 2019 workshops. The objective is

        GLS(L) = (prod_i L_i)^(1/T),

    computed as `exp(mean(log L))` (no overflow or underflow of the product).
    `combine_losses` returns it, so the trainer's single backward pass gives the
    exact gradient; its weights, the gradient with respect to the losses, are

        w_i = dGLS / dL_i = GLS / (T * L_i),

    which `loss_weights` returns (and `aggregate` applies to the task
    gradients). The losses must be positive: at a zero loss the geometric mean
    is 0 and its gradient undefined (NaN), as in LibMTL.

    Hyper-parameters: none.

    Differences from LibMTL: the objective is the same; LibMTL reports the
    weights as `L_i / (T * prod_j L_j)`, which is not the gradient of the
    objective, while the weights here are (`GLS / (T * L_i)`).
    """

    def _geometric_mean(self, losses):
        return tf.exp(tf.reduce_mean(tf.math.log(losses)))

    def _loss_weights(self, losses, tasks):
        """Returns `GLS / (T * losses)` over the tasks `tasks` (no gradient)."""
        losses = tf.stop_gradient(losses)
        return self._geometric_mean(losses) / (len(tasks) * losses)

    def _objective(self, losses, tasks):
        """The geometric mean of `losses`, differentiable, and the weights."""
        return self._geometric_mean(losses), self._loss_weights(losses, tasks)
