"""The `cnn` encoder: a small image CNN, one stage per conv block."""
from typing import Optional, Sequence

import keras
import tensorflow as tf

from multitask.modeling import checks
from multitask.modeling import registry
from multitask.modeling.encoders import stages as stages_lib

READOUTS = ("flatten", "global_average", "none")


class _NonEmptyBatch(keras.layers.Layer):
    """Runs `layer` on a batch of at least one example.

    oneDNN's CPU Conv2D (TensorFlow 2.20) returns a wrongly shaped result for
    an empty batch, which one replica gets at the end of an evaluation split
    that does not divide evenly: such a batch runs as one zero example whose
    output is sliced away.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs, training=None):
        batch_size = tf.shape(inputs)[0]
        padding = tf.cast(tf.equal(batch_size, 0), tf.int32)
        paddings = [[0, padding]] + [[0, 0]] * (len(inputs.shape) - 1)
        return self.layer(tf.pad(inputs, paddings), training=training)[:batch_size]


@registry.register_encoder("cnn")
class CNNEncoder(stages_lib.StagedEncoder):
    """A small CNN for `[b, height, width, channels]` images.

    Stages: one per entry of `filters` (a `kernel_size` Conv2D with "same"
    padding, then `pool_size` max-pooling); the readout (`flatten`,
    `global_average` or `none`) ends the last conv stage, or starts a Dense
    stage of `dense_units` when that is set.
    """

    def __init__(self, filters: Sequence[int] = (16, 32), kernel_size: int = 3, activation: str = "relu",
                 pool_size: int = 2, readout: str = "flatten", dense_units: Optional[int] = None,
                 dropout: float = 0.0, **kwargs):
        """Creates the encoder.

        Args:
          filters: Filters of each conv block.
          kernel_size: Conv kernel size.
          activation: Activation of the convs and of the Dense readout.
          pool_size: Max-pooling size after each conv (1 for none).
          readout: "flatten", "global_average", or "none" (keep the feature map).
          dense_units: Units of a Dense layer after the readout (None for none).
          dropout: Dropout rate before the Dense readout.
          **kwargs: Passed to `keras.layers.Layer`.

        Raises:
          ValueError: A bad size, readout, or `dense_units` with readout "none".
        """
        checks.check_choice("readout", readout, READOUTS)
        if dense_units is not None and (readout == "none" or dense_units <= 0):
            raise ValueError(
                f"dense_units is {dense_units!r} with readout {readout!r}; a Dense readout needs "
                "positive units and readout 'flatten' or 'global_average'."
            )
        pooling = {"flatten": keras.layers.Flatten, "global_average": keras.layers.GlobalAveragePooling2D}
        stages = []
        for count in checks.positive_sizes("filters", filters):
            layers = [_NonEmptyBatch(keras.layers.Conv2D(count, kernel_size, padding="same", activation=activation))]
            if pool_size > 1:
                layers.append(keras.layers.MaxPooling2D(pool_size, padding="same"))
            stages.append(keras.Sequential(layers))
        readout_layers = [pooling[readout]()] if readout != "none" else []
        if dense_units is None:
            stages[-1] = keras.Sequential(stages[-1].layers + readout_layers)
        else:
            dense = ([keras.layers.Dropout(dropout)] if dropout else []) + [
                keras.layers.Dense(dense_units, activation=activation)]
            stages.append(keras.Sequential(readout_layers + dense))
        super().__init__(stages, **kwargs)
