"""Static: fixed per-task weights given in the config."""
from typing import Optional, Sequence

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry


@registry.register_weighting("static")
class StaticWeighting(base.LossWeighting):
    """The joint loss is `sum(weights[i] * losses[i])` with constant weights."""

    constant = True

    def __init__(self, num_tasks: int, weights: Optional[Sequence[float]] = None, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          weights: T non-negative numbers; all ones by default.
          name: The module name.

        Raises:
          ValueError: `weights` has the wrong length or a negative entry.
        """
        super().__init__(num_tasks, name=name)
        weights = [1.0] * num_tasks if weights is None else [float(w) for w in weights]
        if len(weights) != num_tasks or min(weights) < 0:
            raise ValueError(
                f"weighting.weights must be {num_tasks} non-negative numbers, got {weights}."
            )
        self._weights = tf.constant(weights, tf.float32)

    def _loss_weights(self, losses, tasks):
        del losses
        return self.select(self._weights, tasks)
