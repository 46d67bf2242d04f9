"""Tests of FairGrad (multitask/weighting/fairgrad.py)."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting
from multitask.weighting import base


def _aggregate(method, grads):
    grads = tf.constant(grads, tf.float32)
    combined, weights = method.aggregate(tf.ones([grads.shape[0]]), grads)
    return combined.numpy(), weights.numpy()


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_orthogonal_gradients_closed_form(alpha):
    grads = np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 4.0]])
    combined, weights = _aggregate(weighting.get_weighting("fairgrad", 3, alpha=alpha), grads)
    # ||g_i||^2 w_i = w_i^(-1/alpha)  =>  w_i = ||g_i||^(-2 alpha / (1 + alpha)).
    norms = np.array([2.0, 0.5, 4.0])
    np.testing.assert_allclose(weights, norms ** (-2 * alpha / (1 + alpha)), rtol=1e-4)
    np.testing.assert_allclose(combined, weights @ grads, rtol=1e-5)
    if alpha == 1.0:
        # Proportional fairness (Nash bargaining): w_i <g_i, d> = 1 for all i.
        np.testing.assert_allclose(weights * (grads @ combined), 1.0, rtol=1e-4)


def test_weights_solve_the_fairness_equation():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(4, 12)) * np.array([[0.1], [1.0], [3.0], [1.0]])
    for alpha in (0.5, 1.0, 4.0):
        combined, weights = _aggregate(weighting.get_weighting("fairgrad", 4, alpha=alpha), grads)
        assert (weights > 0).all()
        # G G^T w = w^(-1/alpha): task i's improvement <g_i, d> is w_i^(-1/alpha).
        np.testing.assert_allclose(grads @ combined, weights ** (-1 / alpha), rtol=2e-3)


def test_contract_and_validation():
    method = weighting.get_weighting("fairgrad", 2)
    assert method.linear and method.alpha == 1.0
    assert tuple(method.gradient_kinds) == (base.PARAMETER,)
    with pytest.raises(ValueError, match="alpha"):
        weighting.get_weighting("fairgrad", 2, alpha=0.0)


def test_xla_matches_eager():
    rng = np.random.default_rng(1)
    losses = tf.ones([3])
    grads = tf.constant(rng.normal(size=(3, 8)), tf.float32)
    eager = weighting.get_weighting("fairgrad", 3, alpha=2.0).aggregate(losses, grads)
    compiled_method = weighting.get_weighting("fairgrad", 3, alpha=2.0)
    compiled = tf.function(compiled_method.aggregate, jit_compile=True)(losses, grads)
    for expected, actual in zip(eager, compiled):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
