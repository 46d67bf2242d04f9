"""The `keras_layer` encoder: any user Keras layer or model; `wrap_encoder`, `clone_layer`."""
import importlib
from typing import Optional, Sequence

import keras

from multitask.modeling import registry
from multitask.modeling.encoders import stages as stages_lib


def _resolve(layer):
    """A layer, a factory of one, or "module:attribute" naming either -> a layer."""
    if isinstance(layer, str):
        module, _, attribute = layer.partition(":")
        if not attribute:
            raise ValueError(f"layer is {layer!r}; name an importable object as 'module.path:attribute'.")
        layer = getattr(importlib.import_module(module), attribute)
    if not isinstance(layer, keras.layers.Layer) and callable(layer):
        layer = layer()
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(f"layer is a {type(layer).__name__}; an encoder needs a keras.layers.Layer (or Model).")
    return layer


@registry.register_encoder("keras_layer")
class KerasLayerEncoder(stages_lib.StagedEncoder):
    """Any user `keras.layers.Layer` or `keras.Model` used as an encoder."""

    def __init__(self, layer=None, stages: Optional[Sequence] = None, **kwargs):
        """Wraps `layer`, or the `stages` applied in order.

        Args:
          layer: A keras layer or model, a function returning one, or a
            "module.path:attribute" string naming either (so YAML configs can
            name it). One stage.
          stages: Instead of `layer`: layers (or factories, or names) applied in
            order, exposed as the encoder's stages.
          **kwargs: Passed to `keras.layers.Layer`.

        Raises:
          ValueError: Neither or both of `layer` and `stages`, or something
            that is not a keras layer.
        """
        if (layer is None) == (not stages):
            raise ValueError("keras_layer encoder: give exactly one of `layer` and `stages`.")
        super().__init__([_resolve(layer)] if layer is not None else [_resolve(s) for s in stages], **kwargs)
        # One wrapped layer is not a stage split: expose its own stages, if any.
        if layer is not None:
            self.stages = stages_lib.encoder_stages(self.stages[0])


def wrap_encoder(layer=None, stages=None, **kwargs) -> KerasLayerEncoder:
    """Makes a user keras layer/model (or a list of stage layers) an encoder."""
    return KerasLayerEncoder(layer=layer, stages=stages, **kwargs)


def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new, independently initialised layer with `layer`'s configuration."""
    if isinstance(layer, KerasLayerEncoder):
        return KerasLayerEncoder(stages=[clone_layer(stage) for stage in layer.stages])
    if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer)
    return type(layer).from_config(layer.get_config())
