"""Registered encoders: the shared trunks that multi-task architectures build on.

Each encoder is a `keras.layers.Layer` registered under a config `type`, one
module each:

- `mlp`: Dense layers (`hidden_sizes`, `activation`, `dropout`).
- `cnn`: a small image CNN (Conv2D + max-pooling blocks, then a readout).
- `multimodal`: a dict of named modality inputs, one encoder per modality,
  fused by concatenation, attention over modalities or gating.
- `hierarchical`: modalities fused within named groups, then the groups fused.
- `keras_layer`: any user `keras.layers.Layer` / `keras.Model` (see `wrap_encoder`).

Shared parts: `stages` (the stage protocol for intermediate features, which
`cross_stitch` and `mtan` use; `mlp` has one stage per hidden layer, `cnn`
one per conv block plus one for a Dense readout), `fusion` (`Fusion`) and
`modalities` (per-modality encoders).

Importing this package imports every module in it, which registers their
encoders: a new encoder is a new module here (and its test), nothing else.
The names below are re-exported so that `encoders.MLPEncoder` and the like
keep working; a new encoder needs no line here.
"""
from multitask import registry as _registry
from multitask.modeling.encoders.cnn import READOUTS
from multitask.modeling.encoders.cnn import CNNEncoder
from multitask.modeling.encoders.fusion import FUSIONS
from multitask.modeling.encoders.fusion import Fusion
from multitask.modeling.encoders.hierarchical import HierarchicalEncoder
from multitask.modeling.encoders.keras_layer import KerasLayerEncoder
from multitask.modeling.encoders.keras_layer import clone_layer
from multitask.modeling.encoders.keras_layer import wrap_encoder
from multitask.modeling.encoders.mlp import MLPEncoder
from multitask.modeling.encoders.multimodal import MultimodalEncoder
from multitask.modeling.encoders.stages import StagedEncoder
from multitask.modeling.encoders.stages import encoder_stages
from multitask.modeling.encoders.stages import flatten_features
from multitask.modeling.encoders.stages import stage_outputs

_registry.import_submodules(__name__, __path__)
