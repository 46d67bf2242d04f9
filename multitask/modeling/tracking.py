"""A keras Layer base whose lists and dicts of layers `tf.train.Checkpoint` saves.

Keras 3 (3.15, TensorFlow backend) tracks layers held in list or dict
attributes for `layer.variables`, but leaves them out of the object graph
that `tf.train.Checkpoint` saves and restores: their variables would be
silently missing from checkpoints and warm starts. `CheckpointableLayer` adds
such collections back as checkpoint children (`name/0/...`, `name/key/...`).
"""
import keras
import tensorflow as tf


class CheckpointableLayer(keras.layers.Layer):
    """A keras Layer whose list and dict attributes of layers are checkpointed."""

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":
            return children
        # One wrapper object per collection: a checkpoint identifies children by object.
        cache = self.__dict__.setdefault("_checkpoint_collections", {})
        for name in self._tracked:
            value = getattr(self, name, None)
            if isinstance(value, dict):
                items, values = dict(value), list(value.values())
            elif isinstance(value, list):
                items, values = list(value), list(value)
            else:
                continue
            if not values or not all(isinstance(v, tf.__internal__.tracking.Trackable) for v in values):
                continue
            if name not in cache or cache[name][0] != items:
                cache[name] = (items, tf.__internal__.tracking.wrap(items))
            children[name] = cache[name][1]
        return children
