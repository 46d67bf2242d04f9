"""DWA: dynamic weight average from the recent loss descent (LibMTL's `DWA`)."""
from typing import Optional

import tensorflow as tf

from multitask.weighting import base
from multitask.weighting import registry


@registry.register_weighting("dwa")
class DynamicWeightAverage(base.LossWeighting):
    """Weighs up the tasks whose loss went down least in the last step.

    Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention",
    CVPR 2019. With `L_i(t-1)` and `L_i(t-2)` the losses seen by the two
    previous calls,

        r_i = L_i(t-1) / L_i(t-2),
        w_i = T * softmax(r / temperature)_i,

    and `w_i = 1` until two losses have been seen. The ratio uses
    `divide_no_nan`, so a previous loss of exactly 0 gives `r_i = 0` instead of
    NaN. The weights never carry gradient.

    State (saved in checkpoints): `previous_losses` (`L(t-1)`),
    `earlier_losses` (`L(t-2)`) and `history_length` (0, 1 or 2).

    Hyper-parameters:
      temperature: The softmax temperature, 2.0 as in the paper and LibMTL.

    Differences from LibMTL: LibMTL (like the paper) takes the ratio of the
    last two EPOCHS' average training losses and keeps the weights at 1 for the
    first two epochs. The trainer here has no epochs, so the history holds the
    losses of the last two calls (each already averaged over the batch and the
    replicas) and is updated on every call. Noisy per-step losses make the
    weights noisier than epoch averages would.
    """

    def __init__(self, num_tasks: int, temperature: float = 2.0, name: Optional[str] = None):
        """Initializes the method.

        Args:
          num_tasks: T.
          temperature: The softmax temperature, > 0.
          name: The module name.

        Raises:
          ValueError: A temperature that is not a positive number.
        """
        super().__init__(num_tasks, name=name)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f"weighting.temperature must be a positive number, got {temperature!r}.")
        self.temperature = float(temperature)
        self.previous_losses = self.state_variable(tf.zeros([num_tasks]), "previous_losses")
        self.earlier_losses = self.state_variable(tf.zeros([num_tasks]), "earlier_losses")
        self.history_length = self.state_variable(tf.zeros([], tf.int64), "history_length")

    def _loss_weights(self, losses, tasks):
        """Returns the DWA weights from the history, then pushes `losses` into it."""
        losses = tf.stop_gradient(tf.convert_to_tensor(losses, tf.float32))
        previous = self.select(self.previous_losses, tasks)
        earlier = self.select(self.earlier_losses, tasks)
        ratios = tf.math.divide_no_nan(previous, earlier)
        dwa_weights = len(tasks) * tf.nn.softmax(ratios / self.temperature)
        weights = tf.where(self.history_length >= 2, dwa_weights, tf.ones([len(tasks)]))
        self.write(self.earlier_losses, tasks, previous)
        self.write(self.previous_losses, tasks, losses)
        self.history_length.assign(tf.minimum(self.history_length + 1, 2))
        return weights
