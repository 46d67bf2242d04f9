"""Tests of GradDrop (multitask/weighting/graddrop.py)."""
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


def test_matches_the_sign_purity_rule_by_hand():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(3, 200)).astype(np.float32)
    method = weighting.get_weighting("graddrop", 3, leak=0.2, seed=4)
    for calls in range(2):
        uniform = stateless_random.stateless_uniform([200], 4, calls).numpy()
        purity = 0.5 * (1 + grads.sum(0) / (np.abs(grads).sum(0) + 1e-7))
        mask = ((purity > uniform) & (grads > 0)) | ((purity < uniform) & (grads < 0))
        expected = (grads * (0.2 + 0.8 * mask)).sum(0)
        combined, weights = _aggregate(method, grads)
        np.testing.assert_allclose(combined, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(weights, [1.0, 1.0, 1.0])


def test_opposite_signs_keep_exactly_one_side():
    grads = np.stack([np.ones(400), -np.ones(400)])  # Purity 0.5 everywhere.
    combined, _ = _aggregate(weighting.get_weighting("graddrop", 2), grads)
    assert set(np.unique(combined)) == {-1.0, 1.0}
    assert 0.4 < (combined > 0).mean() < 0.6


def test_agreeing_signs_and_full_leak_give_the_sum():
    rng = np.random.default_rng(1)
    same_sign = np.abs(rng.normal(size=(3, 50))) * np.sign(rng.normal(size=50))
    combined, _ = _aggregate(weighting.get_weighting("graddrop", 3), same_sign)
    np.testing.assert_allclose(combined, same_sign.sum(0), rtol=1e-6)
    mixed = rng.normal(size=(3, 50))
    combined, _ = _aggregate(weighting.get_weighting("graddrop", 3, leak=1.0), mixed)
    np.testing.assert_allclose(combined, mixed.sum(0), rtol=1e-5, atol=1e-6)


def test_masks_reproducible_per_seed_and_call():
    grads = np.stack([np.ones(64), -np.ones(64)])
    first = weighting.get_weighting("graddrop", 2, seed=3)
    second = weighting.get_weighting("graddrop", 2, seed=3)
    other_seed = weighting.get_weighting("graddrop", 2, seed=4)
    draws = []
    for _ in range(3):
        combined, _ = _aggregate(first, grads)
        np.testing.assert_array_equal(combined, _aggregate(second, grads)[0])
        assert not np.array_equal(combined, _aggregate(other_seed, grads)[0])
        draws.append(combined)
    assert not np.array_equal(draws[0], draws[1])


def test_contract_and_validation():
    method = weighting.get_weighting("graddrop", 2)
    assert not method.linear
    assert tuple(method.gradient_kinds) == (base.REPRESENTATION,)
    assert "recompute_every" not in weighting.hyperparameters("graddrop")
    with pytest.raises(ValueError, match="leak"):
        weighting.get_weighting("graddrop", 2, leak=-0.1)
    with pytest.raises(ValueError, match="recompute_every"):
        weighting.get_weighting("graddrop", 2, recompute_every=2)


def test_xla_matches_eager():
    rng = np.random.default_rng(2)
    losses = tf.ones([3])
    eager_method = weighting.get_weighting("graddrop", 3, leak=0.1)
    compiled_method = weighting.get_weighting("graddrop", 3, leak=0.1)
    step = tf.function(compiled_method.aggregate, jit_compile=True)
    for _ in range(2):
        grads = tf.constant(rng.normal(size=(3, 32)), tf.float32)
        for expected, actual in zip(eager_method.aggregate(losses, grads), step(losses, grads)):
            np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
