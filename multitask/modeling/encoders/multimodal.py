"""The `multimodal` encoder: one encoder per named modality input, then a `Fusion`."""
from typing import Mapping

from multitask.modeling import registry
from multitask.modeling import tracking
from multitask.modeling.encoders import fusion as fusion_lib
from multitask.modeling.encoders import modalities as modalities_lib


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
        self.modality_encoders = modalities_lib.build_modality_encoders(modalities)
        self.fusion = fusion_lib.Fusion(list(self.modality_encoders), projection_units, fusion, name="fusion")

    def call(self, inputs, training=None):
        features = modalities_lib.modality_features(self.modality_encoders, inputs, training, "multimodal encoder")
        return self.fusion(features, training=training)
