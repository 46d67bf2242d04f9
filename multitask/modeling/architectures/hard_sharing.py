"""The `hard_sharing` architecture: one encoder, every task's head on its output."""
from typing import Sequence

from multitask.modeling import registry
from multitask.modeling.architectures import base


@registry.register_architecture("hard_sharing")
class HardSharing(base.Architecture):
    """Hard parameter sharing: one encoder, every task's head on its output."""

    def __init__(self, encoder_factory: base.EncoderFactory, task_names: Sequence[str], inputs=None):
        super().__init__(task_names)
        self.encoder = encoder_factory()

    def shared_layers(self):
        return [self.encoder]

    def branch_layers(self, task):
        return []

    def shared(self, features, training=None):
        return self.encoder(features, training=training)

    def branch(self, task, shared, training=None):
        return shared
