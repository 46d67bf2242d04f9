"""Tests of GradVac (multitask/weighting/gradvac.py)."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting
from multitask.weighting import base
from multitask.weighting import stateless_random


def _aggregate(method, grads):
    grads = tf.constant(grads, tf.float32)
    combined, weights = method.aggregate(tf.ones([grads.shape[0]]), grads)
    return combined.numpy(), weights.numpy()


def _reference(grads, targets, orders, beta):
    """The paper's loop on the raw gradients; returns the update and new targets."""
    targets = targets.copy()
    adjusted = grads.copy()
    for i, order in enumerate(orders):
        for j in order:
            if j == i:
                continue
            norm_i, norm_j = np.linalg.norm(adjusted[i]), np.linalg.norm(grads[j])
            cosine = adjusted[i] @ grads[j] / (norm_i * norm_j + 1e-8)
            target = targets[i, j]
            if cosine < target:
                shift = norm_i * (target * np.sqrt(1 - cosine**2) - cosine * np.sqrt(1 - target**2))
                adjusted[i] = adjusted[i] + shift / (norm_j * np.sqrt(1 - target**2) + 1e-8) * grads[j]
            targets[i, j] = (1 - beta) * target + beta * cosine
    return adjusted.sum(axis=0), targets


def test_first_call_projects_like_pcgrad_and_moves_the_targets():
    grads = np.array([[1.0, 0.0], [-1.0, 1.0]])
    method = weighting.get_weighting("gradvac", 2)
    combined, weights = _aggregate(method, grads)
    # Zero targets: the adjustment is PCGrad's projection.
    np.testing.assert_allclose(combined, [0.5, 1.5], atol=1e-6)
    np.testing.assert_allclose(weights, [2.0, 1.5], atol=1e-6)
    cosine = -1 / np.sqrt(2)
    np.testing.assert_allclose(method.targets.numpy(), [[0.0, 0.5 * cosine], [0.5 * cosine, 0.0]], atol=1e-6)


def test_adjustment_reaches_the_target_cosine():
    grads = np.array([[1.0, 0.0], [0.0, 1.0]])  # Cosine 0.
    method = weighting.get_weighting("gradvac", 2, beta=0.5)
    method.targets.assign([[0.0, 0.5], [0.5, 0.0]])
    combined, weights = _aggregate(method, grads)
    # Each p_i is moved to cosine 0.5 with the other: p_1 = g1 + g2 / sqrt(3).
    np.testing.assert_allclose(weights, [1 + 1 / np.sqrt(3)] * 2, atol=1e-5)
    adjusted = grads[0] + grads[1] / np.sqrt(3)
    assert adjusted @ grads[1] / np.linalg.norm(adjusted) == pytest.approx(0.5, abs=1e-5)
    np.testing.assert_allclose(combined, weights @ grads, atol=1e-6)
    np.testing.assert_allclose(method.targets.numpy(), [[0.0, 0.25], [0.25, 0.0]], atol=1e-6)


def test_matches_the_reference_loop_over_several_calls():
    rng = np.random.default_rng(0)
    method = weighting.get_weighting("gradvac", 4, beta=0.3, seed=2)
    targets = np.zeros((4, 4))
    for calls in range(3):
        grads = rng.normal(size=(4, 6)) + 0.5
        orders = stateless_random.random_permutations(4, 4, 2, calls).numpy()
        expected, targets = _reference(grads, targets, orders, 0.3)
        combined, _ = _aggregate(method, grads)
        np.testing.assert_allclose(combined, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(method.targets.numpy(), targets, atol=1e-5)


def test_targets_are_saved_and_restored_by_a_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=(3, 5)) for _ in range(3)]
    method = weighting.get_weighting("gradvac", 3)
    _aggregate(method, grads[0])
    _aggregate(method, grads[1])
    assert np.abs(method.targets.numpy()).sum() > 0
    path = tf.train.Checkpoint(weighting=method).write(str(tmp_path / "ckpt"))
    saved_targets = method.targets.numpy()
    expected, _ = _aggregate(method, grads[2])
    restored = weighting.get_weighting("gradvac", 3)
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(restored.targets.numpy(), saved_targets)
    np.testing.assert_allclose(_aggregate(restored, grads[2])[0], expected, rtol=1e-6)


def test_contract_and_validation():
    method = weighting.get_weighting("gradvac", 2)
    assert method.linear
    assert tuple(method.gradient_kinds) == (base.PARAMETER,)
    assert {"beta", "seed", "recompute_every"} <= set(weighting.hyperparameters("gradvac"))
    with pytest.raises(ValueError, match="beta"):
        weighting.get_weighting("gradvac", 2, beta=1.5)


def test_xla_matches_eager():
    rng = np.random.default_rng(3)
    losses = tf.ones([3])
    eager_method = weighting.get_weighting("gradvac", 3)
    compiled_method = weighting.get_weighting("gradvac", 3)
    step = tf.function(compiled_method.aggregate, jit_compile=True)
    for _ in range(2):
        grads = tf.constant(rng.normal(size=(3, 5)), tf.float32)
        for expected, actual in zip(eager_method.aggregate(losses, grads), step(losses, grads)):
            np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(compiled_method.targets.numpy(), eager_method.targets.numpy(), atol=1e-5)


def test_state_updates_in_the_replica_context(two_cpu_strategy):
    rng = np.random.default_rng(5)
    grads = tf.constant(rng.normal(size=(3, 5)), tf.float32)
    losses = tf.ones([3])
    with two_cpu_strategy.scope():
        mirrored = weighting.get_weighting("gradvac", 3)
    single = weighting.get_weighting("gradvac", 3)

    @tf.function
    def step():
        return two_cpu_strategy.run(mirrored.aggregate, args=(losses, grads))

    for _ in range(2):
        combined, _ = step()
        expected, _ = single.aggregate(losses, grads)
        for replica_value in two_cpu_strategy.experimental_local_results(combined):
            np.testing.assert_allclose(replica_value.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mirrored.targets.numpy(), single.targets.numpy(), atol=1e-6)
    assert int(mirrored.calls.numpy()) == 2
