"""Tests for the multi-task architectures: shapes, parameter sharing per paper, training."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import modeling_toy
from multitask.training import gradients
from multitask import weighting
from multitask.modeling import architectures
from multitask.modeling import encoders
from multitask.modeling import registry
from multitask.modeling import shared_encoder_model

ARCHITECTURES = ("hard_sharing", "cross_stitch", "mmoe", "dselect_k", "cgc", "ple", "mtan")
# Encoder: mlp [6, 5], two stages of 2 variables each; experts: one Dense layer.
EXPERT = {"expert_units": [3]}


def _model(architecture, kind="vector", **kwargs):
    return shared_encoder_model.SharedEncoderModel(
        modeling_toy.model_config(kind, architecture=architecture, **kwargs))


def _ids(variables):
    return {id(v) for v in variables}


def _ids_of(layers):
    return {id(v) for layer in layers for v in layer.trainable_variables}


def _sharing(model):
    """(shared variable ids, {task: task-only variable ids}) as the joint trainer splits them."""
    shared, specific = gradients.split_variables(model, modeling_toy.TASKS)
    return _ids(shared), {task: _ids(v) for task, v in specific.items()}


def _heads(model):
    return {task: _ids(model.heads[task].head.trainable_variables) for task in modeling_toy.TASKS}


def test_registered_architectures():
    assert set(ARCHITECTURES) <= set(registry.ARCHITECTURES.names)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_builds_and_gives_each_task_its_outputs(name):
    model = _model({"type": name})
    x = modeling_toy.features("vector", 3)
    representation = model.encode(x)
    assert len(representation.shape) == 2 or name == "cross_stitch"
    for task in modeling_toy.TASKS:
        outputs = model.task_outputs(task, representation)
        assert outputs.shape == (3, 2)
        # The single-pass split computes what the task's own sub-model computes.
        np.testing.assert_allclose(outputs, model.sub_tasks[task](x), rtol=1e-5, atol=1e-6)


def test_hard_sharing_shares_the_encoder_only():
    model = _model({"type": "hard_sharing"})
    shared, specific = _sharing(model)
    assert shared == _ids(model.encoders[0].trainable_variables) and len(shared) == 4
    assert specific == _heads(model)


def test_cross_stitch_has_a_column_per_task_and_a_unit_per_stage():
    model = _model({"type": "cross_stitch", "alpha_same": 0.8})
    arch = model.architecture
    columns = {task: _ids(arch.columns[task].trainable_variables) for task in modeling_toy.TASKS}
    assert len(columns["a"]) == len(columns["b"]) == 4 and not columns["a"] & columns["b"]
    assert len(arch.units) == 2  # the mlp encoder's two stages
    for unit in arch.units:
        np.testing.assert_allclose(unit.alpha.numpy(), [[0.8, 0.2], [0.2, 0.8]], rtol=1e-6)
    shared, specific = _sharing(model)
    # Through the units every column feeds every task.
    assert shared == columns["a"] | columns["b"] | _ids_of(arch.units) and len(shared) == 10
    assert specific == _heads(model)
    assert set(model.checkpoint_items) == {"encoder_a", "encoder_b"}


def test_cross_stitch_units_mix_columns_with_alpha():
    unit = architectures.CrossStitchUnit(3)
    np.testing.assert_allclose(unit.alpha.numpy(), [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]],
                               rtol=1e-6)
    columns = [np.full((1, 2), v, np.float32) for v in (1.0, 2.0, 4.0)]
    mixed = unit(columns)
    np.testing.assert_allclose(mixed[0], [[0.9 + 0.1 + 0.2] * 2], rtol=1e-6)
    np.testing.assert_allclose(mixed[2], [[0.05 + 0.1 + 3.6] * 2], rtol=1e-6)


def test_mmoe_shares_experts_and_gives_each_task_a_gate():
    model = _model({"type": "mmoe", "num_experts": 3, **EXPERT})
    arch = model.architecture
    shared, specific = _sharing(model)
    assert shared == _ids(arch.encoder.trainable_variables) | _ids_of(arch.experts) and len(shared) == 4 + 3 * 2
    for task in modeling_toy.TASKS:
        assert specific[task] == _ids(arch.gates[task].trainable_variables) | _heads(model)[task]
        assert len(specific[task]) == 2 + 2
    # Each task's own representation: its gate's convex mix of the experts.
    x = modeling_toy.features("vector", 4)
    shared_out = arch.shared(x)
    for task in modeling_toy.TASKS:
        weights = arch.gates[task](shared_out["encoded"]).numpy()
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
        expected = np.einsum("be,bed->bd", weights, shared_out["experts"].numpy())
        np.testing.assert_allclose(arch.branch(task, shared_out), expected, rtol=1e-5)
    assert not np.allclose(arch.branch("a", shared_out), arch.branch("b", shared_out))


def test_cgc_shares_the_shared_experts_only():
    model = _model({"type": "cgc", "num_shared_experts": 2, "num_task_experts": 2, **EXPERT})
    arch = model.architecture
    shared, specific = _sharing(model)
    assert shared == _ids(arch.encoder.trainable_variables) | _ids_of(arch.shared_experts[0])
    assert len(shared) == 4 + 2 * 2
    for task in modeling_toy.TASKS:
        own = _ids_of(arch.task_experts[0][task]) | _ids(arch.task_gates[0][task].trainable_variables)
        assert specific[task] == own | _heads(model)[task]
        assert len(specific[task]) == 2 * 2 + 2 + 2
    assert not _ids_of(arch.task_experts[0]["a"]) & _ids_of(arch.task_experts[0]["b"])


def test_ple_shares_inner_levels_through_the_shared_gates():
    model = _model({"type": "ple", "num_levels": 2, "num_shared_experts": 1, "num_task_experts": 1, **EXPERT})
    arch = model.architecture
    shared, specific = _sharing(model)
    level0 = _ids_of(arch.task_experts[0]["a"] + arch.task_experts[0]["b"] + arch.shared_experts[0])
    expected_shared = (_ids(arch.encoder.trainable_variables) | level0
                       | _ids(arch.shared_gates[0].trainable_variables) | _ids_of(arch.shared_experts[1]))
    assert shared == expected_shared and len(shared) == 4 + 3 * 2 + 2 + 2
    assert len(arch.shared_gates) == 1  # no shared gate at the last level
    for task in modeling_toy.TASKS:
        own = (_ids(arch.task_gates[0][task].trainable_variables) | _ids_of(arch.task_experts[1][task])
               | _ids(arch.task_gates[1][task].trainable_variables))
        assert specific[task] == own | _heads(model)[task] and len(specific[task]) == 2 + 2 + 2 + 2


def test_ple_three_levels_uses_lower_task_gates_for_all_tasks():
    model = _model({"type": "ple", "num_levels": 3, "num_shared_experts": 1, "num_task_experts": 1, **EXPERT})
    arch = model.architecture
    shared, specific = _sharing(model)
    # Task a's level-0 gate feeds a's level-1 expert, which the level-1 shared gate mixes for b too.
    assert _ids(arch.task_gates[0]["a"].trainable_variables) <= shared
    assert _ids(arch.task_gates[1]["a"].trainable_variables) <= specific["a"]
    assert len(shared) == 4 + 2 * (3 * 2 + 2) + 2 * 2 + 2


def test_dselect_k_gate_selects_by_binary_code():
    gate = architectures.DSelectKGate(num_experts=4, k=1, gamma=1.0)
    x = np.ones((2, 3), np.float32)
    gate(x)
    # z >= gamma/2 on both bits: the selector picks expert 0b11 = 3.
    gate.z_logits.kernel.assign(np.zeros((3, 2), np.float32))
    gate.z_logits.bias.assign([1.0, 1.0])
    np.testing.assert_allclose(gate(x), [[0, 0, 0, 1]] * 2, atol=1e-6)
    gate.z_logits.bias.assign([-1.0, 1.0])  # bits 0, 1: expert 1
    np.testing.assert_allclose(gate(x), [[0, 1, 0, 0]] * 2, atol=1e-6)
    gate.z_logits.bias.assign([0.0, 0.0])  # S(0) = 1/2 on each bit: uniform
    np.testing.assert_allclose(gate(x), [[0.25] * 4] * 2, atol=1e-6)


def test_dselect_k_mixes_k_selectors_and_adds_its_regularisers():
    gate = architectures.DSelectKGate(num_experts=3, k=2, gamma=1.0, entropy_reg=0.1)
    x = np.ones((2, 3), np.float32)
    weights = gate(x, training=True).numpy()
    assert weights.shape == (2, 3) and np.all(weights >= 0) and np.all(weights.sum(axis=1) <= 1.0 + 1e-6)
    assert len(gate.losses) == 1 and float(gate.losses[0]) > 0
    gate(x, training=False)
    assert not gate.losses


def test_dselect_k_shares_experts_and_gives_each_task_a_gate():
    model = _model({"type": "dselect_k", "num_experts": 4, "k": 2, **EXPERT})
    arch = model.architecture
    shared, specific = _sharing(model)
    assert shared == _ids(arch.encoder.trainable_variables) | _ids_of(arch.experts) and len(shared) == 4 + 4 * 2
    for task in modeling_toy.TASKS:
        # Two Dense layers (z and w logits) and the head.
        assert specific[task] == _ids(arch.gates[task].trainable_variables) | _heads(model)[task]
        assert len(specific[task]) == 4 + 2


def test_mtan_has_task_attention_per_stage_and_shared_block_layers():
    model = _model({"type": "mtan"})
    arch = model.architecture
    shared, specific = _sharing(model)
    blocks = _ids_of(arch.blocks)
    assert len(arch.blocks) == 1 and len(blocks) == 2
    assert shared == _ids(arch.encoder.trainable_variables) | blocks
    for task in modeling_toy.TASKS:
        attention = _ids_of(arch.attention[task])
        assert len(arch.attention[task]) == 2 and len(attention) == 2 * 4
        assert specific[task] == attention | _heads(model)[task]
    assert not _ids_of(arch.attention["a"]) & _ids_of(arch.attention["b"])


def test_mtan_on_cnn_feature_maps():
    model = _model({"type": "mtan"}, kind="image", encoder={"type": "cnn", "filters": [2, 3], "readout": "none"})
    arch = model.architecture
    # Conv attention modules with BN; a 3x3 conv block and pooling to the next stage's 2x2 map.
    assert [type(layer).__name__ for layer in arch.blocks[0].layers] == [
        "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D"]
    x = modeling_toy.features("image", 2)
    assert arch.branch("a", arch.shared(x)).shape == (2, 2, 2, 3)


def test_mtan_refuses_rep_grad(two_cpu_strategy):
    with pytest.raises(ValueError, match="rep_grad"):
        modeling_toy.trainer(two_cpu_strategy, lambda: _model({"type": "mtan"}),
                             weighting=weighting.get_weighting("ew", 2), rep_grad=True)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_trains_under_mirrored_strategy(name, two_cpu_strategy):
    keras.utils.set_random_seed(1)
    trainer, model = modeling_toy.trainer(two_cpu_strategy, lambda: _model({"type": name, **(
        EXPERT if name in ("mmoe", "dselect_k", "cgc", "ple") else {})}))
    before = [v.numpy().copy() for v in model.trainable_variables]
    logs = trainer.train(tf.constant(2))
    assert int(trainer.global_step.numpy()) == 2
    assert all(np.isfinite(float(logs[t]["training_loss"])) for t in modeling_toy.TASKS)
    changed = [not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert sum(changed) >= len(changed) - 2, f"{name}: only {sum(changed)} of {len(changed)} variables trained"


def test_rep_grad_on_the_packed_representation_equals_the_plain_step():
    """EW over representation gradients makes the plain joint step's update when the
    shared part's outputs (PLE: three tensors) are packed into one."""

    def run(**kwargs):
        keras.utils.set_random_seed(3)
        trainer, model = modeling_toy.trainer(
            tf.distribute.get_strategy(), lambda: _model({"type": "ple", **EXPERT}), **kwargs)
        trainer.train(tf.constant(2))
        return [v.numpy() for v in model.trainable_variables]

    plain = run()
    balanced = run(weighting=weighting.get_weighting("ew", 2), rep_grad=True)
    for a, b in zip(plain, balanced):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_unknown_architecture_and_bad_keys_are_clear_errors():
    with pytest.raises(ValueError, match=r"task.model.architecture.type is 'moe'.*registered: .*mmoe"):
        modeling_toy.model_config(architecture={"type": "moe"}).validate()
    with pytest.raises(ValueError, match=r"'mmoe' does not take num_expert; it takes: .*num_experts"):
        modeling_toy.model_config(architecture={"type": "mmoe", "num_expert": 2}).validate()
    with pytest.raises(ValueError, match="num_experts is 0"):
        _model({"type": "mmoe", "num_experts": 0})


def test_mtan_refuses_stage_shapes_it_cannot_map():
    inputs = keras.Input((9, 9, 1))
    strided = encoders.wrap_encoder(stages=[keras.layers.Conv2D(2, 1), keras.layers.Conv2D(2, 3, strides=2)])
    with pytest.raises(ValueError, match=r"stage 0's output \(None, 9, 9, 2\) maps to"):
        architectures.MTAN(lambda: strided, ["a"], inputs)
    sequence = encoders.wrap_encoder(stages=[keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="rank 2 .* or 4"):
        architectures.MTAN(lambda: sequence, ["a"], keras.Input((5, 4)))
    with pytest.raises(ValueError, match="needs the model inputs"):
        architectures.MTAN(lambda: sequence, ["a"])
