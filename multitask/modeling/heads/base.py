"""`Head`: the base of every head (hidden layers, an output Dense, a masked loss)."""
from typing import List, Sequence

import keras
import tensorflow as tf

from multitask.modeling import partial_labels
from multitask.modeling import tracking


class Head(tracking.CheckpointableLayer):
    """Base head: optional hidden layers, an output Dense, and a masked loss.

    Subclasses set the output width and implement `per_example_loss`,
    `label_mask`, `build_metrics` and `update_metrics` (the contract is in
    the `heads` package docstring).
    """

    def __init__(self, output_units: int, hidden_sizes: Sequence[int] = (), activation: str = "relu",
                 dropout: float = 0.0, **kwargs):
        """Creates the layers.

        Args:
          output_units: Width of the output Dense.
          hidden_sizes: Units of the hidden Dense layers, in order.
          activation: Activation of the hidden layers.
          dropout: Dropout rate after each hidden layer (training only).
          **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

        Raises:
          ValueError: A non-positive width or a dropout rate outside [0, 1).
        """
        super().__init__(**kwargs)
        hidden_sizes = tuple(int(units) for units in hidden_sizes or ())
        if int(output_units) <= 0 or any(units <= 0 for units in hidden_sizes):
            raise ValueError(
                f"Head {self.name!r}: output and hidden_sizes units must be positive, got "
                f"{output_units} and {hidden_sizes}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Head {self.name!r}: dropout is {dropout}; allowed: 0 <= dropout < 1.")
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = float(dropout)
        self.hidden_layers = [keras.layers.Dense(units, activation=activation) for units in hidden_sizes]
        self.dropout_layers = [keras.layers.Dropout(dropout) for _ in hidden_sizes] if dropout else []
        self.output_layer = keras.layers.Dense(int(output_units))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for i, layer in enumerate(self.hidden_layers):
            x = layer(x)
            if self.dropout_layers:
                x = self.dropout_layers[i](x, training=training)
        return self.output_layer(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_layer.units,)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_sizes=self.hidden_sizes, activation=self.activation, dropout=self.dropout)
        return config

    def label_mask(self, labels) -> tf.Tensor:
        """1.0 where an entry of `labels` is labelled, 0.0 where it is missing."""
        raise NotImplementedError

    def per_example_loss(self, labels, outputs) -> tf.Tensor:
        """Per-entry float32 losses, shaped like `label_mask(labels)`, 0 where unlabelled."""
        raise NotImplementedError

    def loss(self, labels, outputs) -> tf.Tensor:
        """Mean of `per_example_loss` over the global batch's labelled entries (0 if none)."""
        return partial_labels.masked_mean(self.per_example_loss(labels, outputs), self.label_mask(labels))

    def loss_count(self, labels) -> tf.Tensor:
        """The weight of this replica's `loss` in the logged loss means (`partial_labels.loss_count`).

        `global labelled count / num_replicas`; a head whose `loss` is not
        `masked_mean` over `label_mask` overrides it.
        """
        return partial_labels.loss_count(self.label_mask(labels))

    def build_metrics(self) -> List[keras.metrics.Metric]:
        """Fresh metric objects for this head."""
        raise NotImplementedError

    def update_metrics(self, metrics, labels, outputs) -> None:
        """Updates `build_metrics()`' metrics with one batch; unlabelled entries weigh 0."""
        raise NotImplementedError
