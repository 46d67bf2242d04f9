"""Configurable building blocks of multi-task models: encoders, heads, architectures.

- `registry`: the ENCODERS, HEADS and ARCHITECTURES registries and their
  `register_*` decorators (plugins add blocks without changing the core);
  the mechanism is `multitask.registry.Registry`, shared with the weighting
  methods.
- `encoders/`: mlp, cnn, multimodal, hierarchical, keras_layer, one module
  each; `encoders/stages.py` is the stage protocol for intermediate features.
- `architectures/`: hard_sharing, cross_stitch, mmoe, dselect_k, cgc, ple,
  mtan, one module each; `architectures/base.py` is the `Architecture` contract.
- `heads/`: classification, sequence_labeling, binary, multilabel,
  regression, contrastive, ranking, one module each; `heads/base.py` is the
  `Head` contract.
- `checks`: argument checks the blocks share; `tracking`: checkpointed
  lists and dicts of layers; `partial_labels`: masked means over labels.
- `shared_encoder_model`: `SharedEncoderModel`, the multi-task model a
  `SharedEncoderModelConfig` (`MultiTaskConfig.model`) describes.
- `head_task`: `HeadTask`, a Task made of a registered head.

Adding an encoder, head or architecture is adding one module to its package
(and its test): the package imports all its modules, which registers them.
"""
