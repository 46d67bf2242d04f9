"""The `hierarchical` encoder: modalities fused within named groups, then the groups fused."""
from typing import Mapping, Sequence

from multitask.modeling import registry
from multitask.modeling import tracking
from multitask.modeling.encoders import fusion as fusion_lib
from multitask.modeling.encoders import modalities as modalities_lib


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
        self.modality_encoders = modalities_lib.build_modality_encoders(modalities)
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
        self.group_fusions = {group: fusion_lib.Fusion(members, projection_units, group_fusion,
                                                       name=f"{group}_fusion")
                              for group, members in self.groups.items()}
        self.fusion = fusion_lib.Fusion(list(self.groups), projection_units, fusion, name="fusion")

    def call(self, inputs, training=None):
        features = modalities_lib.modality_features(self.modality_encoders, inputs, training, "hierarchical encoder")
        grouped = {
            group: self.group_fusions[group]({m: features[m] for m in members}, training=training)
            for group, members in self.groups.items()
        }
        return self.fusion(grouped, training=training)
