"""Tests of PCGrad (multitask/weighting/pcgrad.py)."""
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


def _reference(grads, orders):
    """LibMTL's loop on the raw gradients, with given visiting orders."""
    projected = grads.copy()
    for i, order in enumerate(orders):
        for j in order:
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot * grads[j] / (grads[j] @ grads[j])
    return projected.sum(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_two_conflicting_gradients_by_hand(seed):
    # p1 = g1 - (-1 / 2) g2 = [0.5, 0.5]; p2 = g2 - (-1 / 1) g1 = [0, 1].
    combined, weights = _aggregate(weighting.get_weighting("pcgrad", 2, seed=seed), [[1.0, 0.0], [-1.0, 1.0]])
    np.testing.assert_allclose(combined, [0.5, 1.5], atol=1e-6)
    np.testing.assert_allclose(weights, [2.0, 1.5], atol=1e-6)


def test_agreeing_gradients_are_summed():
    grads = np.array([[1.0, 0.0, 1.0], [0.5, 2.0, 0.0], [0.0, 1.0, 1.0]])
    combined, weights = _aggregate(weighting.get_weighting("pcgrad", 3), grads)
    np.testing.assert_allclose(weights, [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(combined, grads.sum(axis=0), atol=1e-6)


def test_matches_the_projection_loop_in_the_drawn_order():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(4, 6))
    method = weighting.get_weighting("pcgrad", 4, seed=5)
    for calls in range(3):
        orders = stateless_random.random_permutations(4, 4, 5, calls).numpy()
        combined, weights = _aggregate(method, grads)
        np.testing.assert_allclose(combined, _reference(grads, orders), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(combined, weights @ grads, rtol=1e-4, atol=1e-5)


def test_order_is_reproducible_and_changes_across_calls():
    rng = np.random.default_rng(2)
    grads = rng.normal(size=(4, 3))
    first = weighting.get_weighting("pcgrad", 4, seed=3)
    second = weighting.get_weighting("pcgrad", 4, seed=3)
    results = []
    for _ in range(8):
        combined, _ = _aggregate(first, grads)
        np.testing.assert_array_equal(combined, _aggregate(second, grads)[0])
        results.append(tuple(np.round(combined, 5)))
    assert len(set(results)) > 1  # The order matters here and is redrawn each call.


def test_calls_restored_from_a_checkpoint_reproduce_the_order(tmp_path):
    rng = np.random.default_rng(4)
    grads = rng.normal(size=(4, 3))
    method = weighting.get_weighting("pcgrad", 4)
    for _ in range(3):
        _aggregate(method, grads)
    path = tf.train.Checkpoint(weighting=method).write(str(tmp_path / "ckpt"))
    expected, _ = _aggregate(method, grads)
    restored = weighting.get_weighting("pcgrad", 4)
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(_aggregate(restored, grads)[0], expected)


def test_contract_and_validation():
    method = weighting.get_weighting("pcgrad", 2)
    assert method.linear
    assert tuple(method.gradient_kinds) == (base.PARAMETER,)
    with pytest.raises(ValueError, match="seed"):
        weighting.get_weighting("pcgrad", 2, seed=0.5)


def test_xla_matches_eager():
    rng = np.random.default_rng(1)
    grads = tf.constant(rng.normal(size=(4, 5)), tf.float32)
    losses = tf.ones([4])
    eager_method = weighting.get_weighting("pcgrad", 4, seed=2)
    compiled_method = weighting.get_weighting("pcgrad", 4, seed=2)
    step = tf.function(compiled_method.aggregate, jit_compile=True)
    for _ in range(2):
        for expected, actual in zip(eager_method.aggregate(losses, grads), step(losses, grads)):
            np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
