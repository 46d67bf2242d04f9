"""Configurable building blocks of multi-task models: encoders, heads, architectures.

- `registry`: the ENCODERS, HEADS and ARCHITECTURES registries and their
  `register_*` decorators (plugins add blocks without changing the core).
- `encoders`: mlp, cnn, multimodal, hierarchical, keras_layer; the stage
  protocol for intermediate features.
- `architectures`: hard_sharing, cross_stitch, mmoe, dselect_k, cgc, ple, mtan.
- `shared_encoder_model`: `SharedEncoderModel`, the multi-task model a
  `SharedEncoderModelConfig` (`MultiTaskConfig.model`) describes.
"""
