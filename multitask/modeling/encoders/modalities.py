"""Per-modality encoders of a dict of named inputs (`multimodal`, `hierarchical`)."""
from typing import Dict, Mapping

import keras

from multitask.modeling import registry


def build_modality_encoders(modalities: Mapping[str, Mapping]) -> Dict[str, keras.layers.Layer]:
    """Builds one encoder per modality.

    Args:
      modalities: `{modality: encoder config {type, ...} or keras layer}`.

    Returns:
      `{modality: encoder}`.

    Raises:
      ValueError: No modalities, or an encoder config of an unknown type.
    """
    if not modalities:
        raise ValueError("modalities is empty; give each modality input an encoder config {type: ...}.")
    encoders = {}
    for name, spec in modalities.items():
        if isinstance(spec, keras.layers.Layer):
            encoders[name] = spec
        else:
            encoders[name] = registry.ENCODERS.build(spec, name=f"{name}_encoder")
    return encoders


def modality_features(encoders: Mapping[str, keras.layers.Layer], inputs, training, what: str) -> Dict:
    """Runs each modality's encoder on its input.

    Args:
      encoders: `{modality: encoder}`.
      inputs: The features, a dict with (at least) every modality.
      training: Passed to the encoders.
      what: The caller, for error messages.

    Returns:
      `{modality: encoding}`.

    Raises:
      ValueError: `inputs` is not a dict.
      KeyError: `inputs` lacks a modality.
    """
    if not isinstance(inputs, Mapping):
        raise ValueError(f"{what} reads a dict of modality inputs {sorted(encoders)}, got {type(inputs).__name__}.")
    missing = sorted(set(encoders) - set(inputs))
    if missing:
        raise KeyError(f"{what}: the features lack modalities {missing}; they have {sorted(inputs)}.")
    return {name: encoder(inputs[name], training=training) for name, encoder in encoders.items()}
