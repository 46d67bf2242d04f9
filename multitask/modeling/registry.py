"""Registries of encoders, heads and architectures, keyed by a config `type`.

A plugin adds a building block without touching the core:

    @registry.register_encoder("my_encoder")
    class MyEncoder(keras.layers.Layer):
        def __init__(self, units=8, **kwargs): ...

and a model config then names it: `encoder: {type: my_encoder, units: 16}`.
The registries are `multitask.registry.Registry`s, the mechanism the
weighting methods use too.
"""
from multitask.registry import AlreadyRegisteredError  # pylint: disable=unused-import
from multitask.registry import Registry

ENCODERS = Registry("encoder")
HEADS = Registry("head")
ARCHITECTURES = Registry("architecture")

register_encoder = ENCODERS.register
register_head = HEADS.register
register_architecture = ARCHITECTURES.register
