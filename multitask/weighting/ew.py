"""EW: equal weighting, the plain sum of the task losses (LibMTL's `EW`)."""
import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry


@registry.register_weighting("ew")
class EqualWeighting(base.LossWeighting):
    """Every task weighs 1: the joint loss is the sum of the task losses."""

    constant = True

    def _loss_weights(self, losses, tasks):
        del losses
        return tf.ones([len(tasks)])
