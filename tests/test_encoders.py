"""Tests for the registered encoders: shapes, stages, fusion maths, training."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import modeling_toy
from multitask.modeling import encoders
from multitask.modeling import registry
from multitask.modeling import shared_encoder_model

MODALITIES = {"x": {"type": "mlp", "hidden_sizes": [4]}, "y": {"type": "mlp", "hidden_sizes": [3]},
              "z": {"type": "mlp", "hidden_sizes": [2]}}


def user_backbone():
    """A user's own keras model, named as "tests.module:attribute" from configs."""
    return keras.Sequential([keras.layers.Dense(5, activation="tanh")])


def test_registered_encoders():
    assert {"mlp", "cnn", "multimodal", "hierarchical", "keras_layer"} <= set(registry.ENCODERS.names)


def test_mlp_has_a_stage_per_layer():
    encoder = registry.ENCODERS.build({"type": "mlp", "hidden_sizes": [6, 5], "dropout": 0.5})
    x = modeling_toy.features("vector", 3)
    outputs = encoders.stage_outputs(encoder, x)
    assert [o.shape for o in outputs] == [(3, 6), (3, 5)]
    np.testing.assert_allclose(encoder(x), outputs[-1])
    assert len(encoder.trainable_variables) == 4
    assert [type(l).__name__ for l in encoder.stages[0].layers] == ["Dense", "Dropout"]
    with pytest.raises(ValueError, match="hidden_sizes"):
        encoders.MLPEncoder(hidden_sizes=[])
    with pytest.raises(ValueError, match="dropout"):
        encoders.MLPEncoder(dropout=1.0)


@pytest.mark.parametrize("readout, dense_units, shapes", [
    ("flatten", None, [(2, 4, 4, 2), (2, 2 * 2 * 3)]),
    ("global_average", None, [(2, 4, 4, 2), (2, 3)]),
    ("none", None, [(2, 4, 4, 2), (2, 2, 2, 3)]),
    ("flatten", 7, [(2, 4, 4, 2), (2, 2, 2, 3), (2, 7)]),
])
def test_cnn_stages_and_readouts(readout, dense_units, shapes):
    encoder = encoders.CNNEncoder(filters=[2, 3], readout=readout, dense_units=dense_units)
    outputs = encoders.stage_outputs(encoder, modeling_toy.features("image", 2))
    assert [tuple(o.shape) for o in outputs] == shapes
    assert len(encoder.trainable_variables) == 4 + (2 if dense_units else 0)


def test_cnn_runs_an_empty_batch():
    encoder = encoders.CNNEncoder(filters=[2])
    assert encoder(np.zeros((0, 8, 8, 1), np.float32)).shape == (0, 4 * 4 * 2)


def test_cnn_bad_readout_is_a_clear_error():
    with pytest.raises(ValueError, match="readout is 'pool'; allowed: flatten, global_average, none"):
        encoders.CNNEncoder(readout="pool")
    with pytest.raises(ValueError, match="dense_units"):
        encoders.CNNEncoder(readout="none", dense_units=4)


@pytest.mark.parametrize("fusion, width", [("concat", 15), ("attention", 5), ("gating", 5)])
def test_multimodal_fusions(fusion, width):
    encoder = encoders.MultimodalEncoder(MODALITIES, fusion=fusion, projection_units=5)
    x = modeling_toy.features("modalities", 3)
    assert encoder(x).shape == (3, width)
    # Per modality: its mlp and projection (2 variables each); plus the fusion's own.
    extra = {"concat": 0, "attention": 3, "gating": 2}[fusion]
    assert len(encoder.trainable_variables) == 3 * 4 + extra


def test_attention_fusion_is_the_softmax_weighted_sum_of_projections():
    fusion = encoders.Fusion(["p", "q"], units=3, fusion="attention")
    inputs = {"p": np.array([[1.0, 2.0]], np.float32), "q": np.array([[0.5, -1.0, 3.0]], np.float32)}
    fused = fusion(inputs).numpy()
    projected = [fusion.projections[n](inputs[n]).numpy() for n in ("p", "q")]
    scores = np.array([fusion.score(fusion.score_hidden(p)).numpy()[0, 0] for p in projected])
    weights = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(fused, weights[0] * projected[0] + weights[1] * projected[1], rtol=1e-5)


def test_gating_fusion_gates_each_projection():
    fusion = encoders.Fusion(["p", "q"], units=2, fusion="gating")
    inputs = {"p": np.array([[1.0, 2.0]], np.float32), "q": np.array([[0.5, -1.0]], np.float32)}
    fused = fusion(inputs).numpy()
    gates = fusion.gate(np.concatenate([inputs["p"], inputs["q"]], axis=1)).numpy().reshape(2, 2)
    projected = [fusion.projections[n](inputs[n]).numpy()[0] for n in ("p", "q")]
    np.testing.assert_allclose(fused[0], gates[0] * projected[0] + gates[1] * projected[1], rtol=1e-5)


def test_multimodal_input_errors():
    encoder = encoders.MultimodalEncoder(MODALITIES)
    with pytest.raises(KeyError, match=r"lack modalities \['z'\]"):
        encoder({"x": np.zeros((1, 4), np.float32), "y": np.zeros((1, 3), np.float32)})
    with pytest.raises(ValueError, match="fusion is 'sum'"):
        encoders.MultimodalEncoder(MODALITIES, fusion="sum")
    with pytest.raises(ValueError, match="Unknown encoder 'mpl'; registered: .*mlp"):
        encoders.MultimodalEncoder({"x": {"type": "mpl"}})


def test_hierarchical_fuses_groups_then_groups():
    encoder = encoders.HierarchicalEncoder(MODALITIES, groups={"g": ["x", "y"], "h": ["z"]},
                                           group_fusion="attention", fusion="concat", projection_units=4)
    assert encoder(modeling_toy.features("modalities", 3)).shape == (3, 2 * 4)
    assert set(encoder.group_fusions) == {"g", "h"}


@pytest.mark.parametrize("groups, message", [
    ({"g": ["x", "y"]}, r"\['z'\] are in no group"),
    ({"g": ["x", "y"], "h": ["y", "z"]}, "'y' is in groups 'g' and 'h'"),
    ({"g": ["x", "y", "z", "w"]}, "names modality 'w'"),
    ({"g": ["x", "y", "z"], "h": []}, "groups.h is empty"),
])
def test_hierarchical_group_errors(groups, message):
    with pytest.raises(ValueError, match=message):
        encoders.HierarchicalEncoder(MODALITIES, groups=groups)


def test_keras_layer_wraps_a_user_model_a_factory_or_a_named_one():
    backbone = user_backbone()
    wrapped = encoders.wrap_encoder(backbone)
    x = modeling_toy.features("vector", 2)
    np.testing.assert_allclose(wrapped(x), backbone(x))
    assert wrapped.trainable_variables[0] is backbone.trainable_variables[0]
    named = registry.ENCODERS.build({"type": "keras_layer", "layer": "test_encoders:user_backbone"})
    assert named(x).shape == (2, 5)
    staged = encoders.wrap_encoder(stages=[keras.layers.Dense(3), keras.layers.Dense(2)])
    assert [o.shape for o in encoders.stage_outputs(staged, x)] == [(2, 3), (2, 2)]
    clone = encoders.clone_layer(staged)
    clone(x)
    assert len(clone.stages) == 2 and not {id(v) for v in clone.variables} & {id(v) for v in staged.variables}
    with pytest.raises(ValueError, match="exactly one of `layer` and `stages`"):
        encoders.wrap_encoder()
    with pytest.raises(ValueError, match="module.path:attribute"):
        encoders.wrap_encoder("user_backbone")


def test_encoder_without_stages_is_one_stage():
    encoder = encoders.MultimodalEncoder(MODALITIES)
    assert encoders.encoder_stages(encoder) == [encoder]


def test_unknown_encoder_and_bad_keys_are_clear_errors():
    with pytest.raises(ValueError, match=r"task.model.encoder.type is 'transformer'.*registered: .*cnn.*mlp"):
        modeling_toy.model_config(encoder={"type": "transformer"}).validate()
    with pytest.raises(ValueError, match=r"'mlp' does not take hiden_sizes; it takes: .*hidden_sizes"):
        modeling_toy.model_config(encoder={"type": "mlp", "hiden_sizes": [3]}).validate()


ENCODER_CASES = {
    "mlp": ("vector", {"type": "mlp", "hidden_sizes": [4]}),
    "cnn": ("image", {"type": "cnn", "filters": [2], "readout": "global_average"}),
    "multimodal": ("modalities", {"type": "multimodal", "modalities": MODALITIES, "fusion": "attention",
                                  "projection_units": 3}),
    "hierarchical": ("modalities", {"type": "hierarchical", "modalities": MODALITIES,
                                    "groups": {"g": ["x", "y"], "h": ["z"]}, "group_fusion": "gating",
                                    "projection_units": 3}),
    "keras_layer": ("vector", {"type": "keras_layer", "layer": "test_encoders:user_backbone"}),
}


@pytest.mark.parametrize("name", sorted(ENCODER_CASES))
def test_trains_under_mirrored_strategy(name, two_cpu_strategy):
    kind, encoder = ENCODER_CASES[name]
    config = modeling_toy.model_config(kind, encoder=encoder)
    trainer, model = modeling_toy.trainer(
        two_cpu_strategy, lambda: shared_encoder_model.SharedEncoderModel(config), kind=kind)
    before = [v.numpy().copy() for v in model.encoders[0].trainable_variables]
    logs = trainer.train(tf.constant(2))
    assert np.isfinite(float(logs["total_loss"]))
    after = model.encoders[0].trainable_variables
    assert all(not np.allclose(b, a.numpy()) for b, a in zip(before, after))
