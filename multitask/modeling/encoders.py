"""Registered encoders: the shared trunks that multi-task architectures build on.

Each encoder is a `keras.layers.Layer` registered under a config `type`:

- `mlp`: Dense layers (`hidden_sizes`, `activation`, `dropout`).
- `cnn`: a small image CNN (Conv2D + max-pooling blocks, then a readout).
- `multimodal`: a dict of named modality inputs, one encoder per modality,
  fused by concatenation, attention over modalities or gating.
- `hierarchical`: modalities fused within named groups, then the groups fused.
- `keras_layer`: any user `keras.layers.Layer` / `keras.Model` (see `wrap_encoder`).

Intermediate features (the stage protocol). An encoder exposes its
intermediate features through a `stages` attribute: a list of layers that,
applied in order, compute the encoder's output (`encoder(x)` equals
`stages[-1](...stages[0](x))`). Architectures that act between layers use
it: `cross_stitch` mixes the task columns after every stage and `mtan` attends
to every stage's output. `mlp` has one stage per hidden layer, `cnn` one per
conv block (plus one for a Dense readout), `wrap_encoder(stages=[...])` the
given ones; an encoder without `stages` counts as one stage
(`encoder_stages`).
"""
import importlib
from typing import Dict, List, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from multitask.modeling import registry
from multitask.modeling import tracking

FUSIONS = ("concat", "attention", "gating")
READOUTS = ("flatten", "global_average", "none")


def flatten_features(x):
    """`[b, ...]` -> `[b, d]`, keeping `d` static where the shape is known."""
    if len(x.shape) == 2:
        return x
    size = int(np.prod(x.shape[1:])) if None not in x.shape[1:] else -1
    return keras.ops.reshape(x, (-1, size))


def encoder_stages(encoder: keras.layers.Layer) -> List[keras.layers.Layer]:
    """Returns `encoder.stages`, or `[encoder]` for an encoder without stages."""
    stages = getattr(encoder, "stages", None)
    return list(stages) if stages else [encoder]


def stage_outputs(encoder: keras.layers.Layer, features, training=None) -> List:
    """Returns the output of every stage of `encoder` on `features`, in order."""
    outputs, x = [], features
    for stage in encoder_stages(encoder):
        x = stage(x, training=training)
        outputs.append(x)
    return outputs


class StagedEncoder(tracking.CheckpointableLayer):
    """An encoder that is a sequence of stages (see the module docstring)."""

    def __init__(self, stages: Sequence[keras.layers.Layer], **kwargs):
        """Creates the encoder.

        Args:
          stages: The layers applied in order.
          **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

        Raises:
          ValueError: `stages` is empty.
        """
        super().__init__(**kwargs)
        if not stages:
            raise ValueError(f"{type(self).__name__} needs at least one stage.")
        self.stages = list(stages)

    def call(self, inputs, training=None):
        x = inputs
        for stage in self.stages:
            x = stage(x, training=training)
        return x


def _check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} is {value!r}; allowed: {', '.join(allowed)}.")


def _sizes(field: str, values) -> List[int]:
    sizes = [int(v) for v in (values or ())]
    if not sizes or any(v <= 0 for v in sizes):
        raise ValueError(f"{field} is {values!r}; it needs one or more positive sizes.")
    return sizes


@registry.register_encoder("mlp")
class MLPEncoder(StagedEncoder):
    """Dense layers on the last axis, one stage per hidden layer."""

    def __init__(self, hidden_sizes: Sequence[int] = (64,), activation: str = "relu",
                 dropout: float = 0.0, **kwargs):
        """Creates the encoder.

        Args:
          hidden_sizes: Units of each Dense layer.
          activation: Activation of every layer (a Keras activation name).
          dropout: Dropout rate after each layer (0 for none).
          **kwargs: Passed to `keras.layers.Layer`.

        Raises:
          ValueError: Empty or non-positive `hidden_sizes`, or a dropout outside [0, 1).
        """
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is {dropout!r}; it must be in [0, 1).")
        stages = []
        for units in _sizes("hidden_sizes", hidden_sizes):
            layers = [keras.layers.Dense(units, activation=activation)]
            if dropout:
                layers.append(keras.layers.Dropout(dropout))
            stages.append(keras.Sequential(layers))
        super().__init__(stages, **kwargs)


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
class CNNEncoder(StagedEncoder):
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
        _check_choice("readout", readout, READOUTS)
        if dense_units is not None and (readout == "none" or dense_units <= 0):
            raise ValueError(
                f"dense_units is {dense_units!r} with readout {readout!r}; a Dense readout needs "
                "positive units and readout 'flatten' or 'global_average'."
            )
        pooling = {"flatten": keras.layers.Flatten, "global_average": keras.layers.GlobalAveragePooling2D}
        stages = []
        for count in _sizes("filters", filters):
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


class Fusion(tracking.CheckpointableLayer):
    """Fuses named feature vectors into one.

    Every input is flattened and projected to `units` (Dense, tanh); then:

    - `concat`: the projections side by side, `[b, n * units]`;
    - `attention`: a softmax over the inputs of the score `v . tanh(W p + b)`
      of each projection `p` (additive attention with one learned query),
      and the weighted sum of the projections, `[b, units]`;
    - `gating`: gated multimodal units (Arevalo et al., 2017): a sigmoid gate
      per input and unit, computed from all inputs, scales each projection,
      and the gated projections are summed, `[b, units]`.
    """

    def __init__(self, names: Sequence[str], units: int = 32, fusion: str = "concat", **kwargs):
        """Creates the layer.

        Args:
          names: The input names, in the order they are fused.
          units: Width of each projection.
          fusion: One of `FUSIONS`.
          **kwargs: Passed to `keras.layers.Layer`.
        """
        super().__init__(**kwargs)
        _check_choice("fusion", fusion, FUSIONS)
        if units <= 0:
            raise ValueError(f"projection units is {units!r}; it must be positive.")
        self.names = tuple(names)
        self.fusion = fusion
        self.projections = {name: keras.layers.Dense(units, activation="tanh", name=f"{name}_projection")
                            for name in self.names}
        if fusion == "attention":
            self.score_hidden = keras.layers.Dense(units, activation="tanh", name="score_hidden")
            self.score = keras.layers.Dense(1, use_bias=False, name="score")
        elif fusion == "gating":
            self.gate = keras.layers.Dense(len(self.names) * units, activation="sigmoid", name="gate")
        self.units = units

    def call(self, inputs: Mapping[str, tf.Tensor], training=None):
        flat = [flatten_features(inputs[name]) for name in self.names]
        projected = [self.projections[name](x) for name, x in zip(self.names, flat)]
        if self.fusion == "concat":
            return keras.ops.concatenate(projected, axis=-1)
        stacked = keras.ops.stack(projected, axis=1)  # [b, n, units]
        if self.fusion == "attention":
            weights = keras.ops.softmax(self.score(self.score_hidden(stacked)), axis=1)  # [b, n, 1]
        else:
            gates = self.gate(keras.ops.concatenate(flat, axis=-1))
            weights = keras.ops.reshape(gates, (-1, len(self.names), self.units))
        return keras.ops.sum(weights * stacked, axis=1)


def _build_modality_encoders(modalities: Mapping[str, Mapping]) -> Dict[str, keras.layers.Layer]:
    if not modalities:
        raise ValueError("modalities is empty; give each modality input an encoder config {type: ...}.")
    encoders = {}
    for name, spec in modalities.items():
        if isinstance(spec, keras.layers.Layer):
            encoders[name] = spec
        else:
            encoders[name] = registry.ENCODERS.build(spec, name=f"{name}_encoder")
    return encoders


def _modality_features(encoders, inputs, training, what: str):
    if not isinstance(inputs, Mapping):
        raise ValueError(f"{what} reads a dict of modality inputs {sorted(encoders)}, got {type(inputs).__name__}.")
    missing = sorted(set(encoders) - set(inputs))
    if missing:
        raise KeyError(f"{what}: the features lack modalities {missing}; they have {sorted(inputs)}.")
    return {name: encoder(inputs[name], training=training) for name, encoder in encoders.items()}


@registry.register_encoder("multimodal")
class MultimodalEncoder(tracking.CheckpointableLayer):
    """Encodes each named modality input with its own encoder, then fuses them.

    Features are a dict `{modality: tensor}`; extra keys are ignored.
    """

    def __init__(self, modalities: Mapping[str, Mapping], fusion: str = "concat", projection_units: int = 32,
                 **kwargs):
        """Creates the encoder.

        Args:
          modalities: `{modality: encoder config}` (e.g. `{type: mlp,
            hidden_sizes: [16]}`) or `{modality: keras layer}`.
          fusion: One of `FUSIONS` (see `Fusion`).
          projection_units: Width of each modality's projection.
          **kwargs: Passed to `keras.layers.Layer`.
        """
        super().__init__(**kwargs)
        self.modality_encoders = _build_modality_encoders(modalities)
        self.fusion = Fusion(list(self.modality_encoders), projection_units, fusion, name="fusion")

    def call(self, inputs, training=None):
        features = _modality_features(self.modality_encoders, inputs, training, "multimodal encoder")
        return self.fusion(features, training=training)


@registry.register_encoder("hierarchical")
class HierarchicalEncoder(tracking.CheckpointableLayer):
    """Fuses modalities within named groups, then fuses the groups.

    Features are a dict `{modality: tensor}`. Each modality has its own
    encoder; each group fuses its modalities' encodings with `group_fusion`
    (a `Fusion`), and the group vectors are fused with `fusion`.
    """

    def __init__(self, modalities: Mapping[str, Mapping], groups: Mapping[str, Sequence[str]],
                 group_fusion: str = "concat", fusion: str = "concat", projection_units: int = 32, **kwargs):
        """Creates the encoder.

        Args:
          modalities: `{modality: encoder config or keras layer}`.
          groups: `{group: [modality, ...]}`; every modality in exactly one group.
          group_fusion: How each group fuses its modalities (one of `FUSIONS`).
          fusion: How the groups are fused (one of `FUSIONS`).
          projection_units: Width of every projection.
          **kwargs: Passed to `keras.layers.Layer`.

        Raises:
          ValueError: An empty group, or a modality in no group, in two
            groups, or not in `modalities`.
        """
        super().__init__(**kwargs)
        self.modality_encoders = _build_modality_encoders(modalities)
        seen = {}
        for group, members in (groups or {}).items():
            if not members:
                raise ValueError(f"groups.{group} is empty; list its modalities.")
            for member in members:
                if member not in self.modality_encoders:
                    raise ValueError(f"groups.{group} names modality {member!r}; modalities: "
                                     f"{', '.join(self.modality_encoders)}.")
                if member in seen:
                    raise ValueError(f"Modality {member!r} is in groups {seen[member]!r} and {group!r}; "
                                     "each modality belongs to one group.")
                seen[member] = group
        ungrouped = [name for name in self.modality_encoders if name not in seen]
        if ungrouped:
            raise ValueError(f"Modalities {ungrouped} are in no group; groups: {sorted(groups or {})}.")
        self.groups = {group: list(members) for group, members in groups.items()}
        self.group_fusions = {group: Fusion(members, projection_units, group_fusion, name=f"{group}_fusion")
                              for group, members in self.groups.items()}
        self.fusion = Fusion(list(self.groups), projection_units, fusion, name="fusion")

    def call(self, inputs, training=None):
        features = _modality_features(self.modality_encoders, inputs, training, "hierarchical encoder")
        grouped = {
            group: self.group_fusions[group]({m: features[m] for m in members}, training=training)
            for group, members in self.groups.items()
        }
        return self.fusion(grouped, training=training)


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
class KerasLayerEncoder(StagedEncoder):
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
            self.stages = encoder_stages(self.stages[0])


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
