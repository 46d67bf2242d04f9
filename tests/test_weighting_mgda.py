"""Tests of MGDA (multitask/weighting/mgda.py)."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting
from multitask.weighting import base


def _aggregate(method, losses, grads):
    combined, weights = method.aggregate(tf.constant(losses, tf.float32), tf.constant(grads, tf.float32))
    return combined.numpy(), weights.numpy()


def test_two_gradients_give_the_analytic_min_norm_point():
    grads = np.array([[1.0, 0.0], [0.0, 2.0]])
    combined, weights = _aggregate(weighting.get_weighting("mgda", 2), [1.0, 1.0], grads)
    # gamma = (|g2|^2 - <g1, g2>) / |g1 - g2|^2 = 4 / 5.
    np.testing.assert_allclose(weights, [0.8, 0.2], atol=1e-6)
    np.testing.assert_allclose(combined, [0.8, 0.4], atol=1e-6)
    # The min-norm point is orthogonal to g1 - g2.
    assert abs(combined @ (grads[0] - grads[1])) < 1e-5


def test_dominated_gradient_takes_all_the_weight():
    grads = np.array([[1.0, 1.0], [3.0, 3.0]])
    combined, weights = _aggregate(weighting.get_weighting("mgda", 2), [1.0, 1.0], grads)
    np.testing.assert_allclose(weights, [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(combined, [1.0, 1.0], atol=1e-6)


def test_three_gradients_satisfy_the_kkt_conditions():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(3, 6))
    combined, weights = _aggregate(weighting.get_weighting("mgda", 3), [1.0, 1.0, 1.0], grads)
    assert (weights >= 0).all()
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)
    products = grads @ combined  # (G w)_i
    value = combined @ combined
    assert products.min() >= value - 1e-4
    np.testing.assert_allclose(products[weights > 1e-4], value, atol=1e-4)


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_normalised_gradients_choose_the_weights_applied_to_raw_ones(normalization):
    grads = np.array([[1.0, 0.0], [0.0, 2.0]])
    losses = np.array([2.0, 0.5])
    norms = np.linalg.norm(grads, axis=1)
    divisor = {"l2": norms, "loss": losses, "loss+": losses * norms}[normalization]
    scaled = grads / divisor[:, None]
    g11, g12, g22 = scaled[0] @ scaled[0], scaled[0] @ scaled[1], scaled[1] @ scaled[1]
    gamma = np.clip((g22 - g12) / (g11 + g22 - 2 * g12), 0.0, 1.0)
    method = weighting.get_weighting("mgda", 2, normalization=normalization)
    combined, weights = _aggregate(method, losses, grads)
    np.testing.assert_allclose(weights, [gamma, 1 - gamma], atol=1e-6)
    np.testing.assert_allclose(combined, weights @ grads, atol=1e-6)


def test_l2_normalisation_balances_unit_directions():
    grads = np.array([[1.0, 0.0], [0.0, 2.0]])
    combined, weights = _aggregate(weighting.get_weighting("mgda", 2, normalization="l2"), [1.0, 1.0], grads)
    np.testing.assert_allclose(weights, [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(combined, [0.5, 1.0], atol=1e-6)


def test_bad_normalization_is_rejected():
    with pytest.raises(ValueError, match="normalization"):
        weighting.get_weighting("mgda", 2, normalization="l1")


def test_contract_attributes():
    method = weighting.get_weighting("mgda", 2)
    assert method.linear
    assert set(method.gradient_kinds) == {base.PARAMETER, base.REPRESENTATION}
    assert "normalization" in weighting.hyperparameters("mgda")


def test_recompute_every_reuses_the_weights():
    method = weighting.get_weighting("mgda", 2, recompute_every=2)
    _, first = _aggregate(method, [1.0, 1.0], [[1.0, 0.0], [0.0, 2.0]])
    other = np.array([[0.0, 1.0], [3.0, 0.0]])
    combined, second = _aggregate(method, [1.0, 1.0], other)
    np.testing.assert_allclose(second, first)
    np.testing.assert_allclose(combined, first @ other, atol=1e-6)
    _, third = _aggregate(method, [1.0, 1.0], other)
    np.testing.assert_allclose(third, [0.9, 0.1], atol=1e-6)


def test_xla_matches_eager():
    rng = np.random.default_rng(1)
    losses = tf.constant(rng.uniform(0.5, 2.0, 4), tf.float32)
    grads = tf.constant(rng.normal(size=(4, 9)), tf.float32)
    eager = weighting.get_weighting("mgda", 4, normalization="loss+").aggregate(losses, grads)
    compiled_method = weighting.get_weighting("mgda", 4, normalization="loss+")
    compiled = tf.function(compiled_method.aggregate, jit_compile=True)(losses, grads)
    for expected, actual in zip(eager, compiled):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
