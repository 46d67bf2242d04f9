"""Tests of CAGrad (multitask/weighting/cagrad.py)."""
import numpy as np
import pytest
from scipy import optimize
import tensorflow as tf

from multitask import weighting
from multitask.weighting import base


def _aggregate(method, grads):
    grads = tf.constant(grads, tf.float32)
    combined, weights = method.aggregate(tf.ones([grads.shape[0]]), grads)
    return combined.numpy(), weights.numpy()


def _simplex_grid(size, steps):
    """All points of the simplex with coordinates in multiples of 1/steps."""
    if size == 2:
        first = np.linspace(0.0, 1.0, steps + 1)
        return np.stack([first, 1 - first], axis=1)
    a, b = np.meshgrid(np.arange(steps + 1), np.arange(steps + 1), indexing="ij")
    keep = a + b <= steps
    a, b = a[keep], b[keep]
    return np.stack([a, b, steps - a - b], axis=1) / steps


def _reference(grads, c, divisor, steps):
    """CAGrad with the inner problem solved by brute force on a simplex grid."""
    gram = grads @ grads.T
    size = len(grads)
    mean = grads.mean(axis=0)
    points = _simplex_grid(size, steps)
    values = points @ gram @ np.full(size, 1 / size)
    values = values + c * np.linalg.norm(mean) * np.sqrt(np.einsum("ni,ij,nj->n", points, gram, points) + 1e-8)
    inner = points[np.argmin(values)]
    combined = inner @ grads
    return (mean + c * np.linalg.norm(mean) / (np.linalg.norm(combined) + 1e-8) * combined) / divisor


@pytest.mark.parametrize("rescale", [0, 1, 2])
def test_c_zero_is_the_mean_gradient(rescale):
    rng = np.random.default_rng(rescale)
    grads = rng.normal(size=(3, 7)).astype(np.float32)
    combined, weights = _aggregate(weighting.get_weighting("cagrad", 3, c=0.0, rescale=rescale), grads)
    np.testing.assert_allclose(weights, [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(combined, grads.mean(axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size,steps", [(2, 20000), (3, 600)])
def test_matches_a_brute_force_inner_solution(size, steps):
    rng = np.random.default_rng(size)
    grads = rng.normal(size=(size, 5))
    grads[1] = -0.8 * grads[0] + 0.3 * grads[1]  # A conflict.
    combined, weights = _aggregate(weighting.get_weighting("cagrad", size, c=0.5, rescale=1), grads)
    expected = _reference(grads, 0.5, 1 + 0.5**2, steps)
    np.testing.assert_allclose(combined, expected, atol=5e-3 * np.linalg.norm(expected))
    np.testing.assert_allclose(combined, weights @ grads, rtol=1e-4, atol=1e-5)


def test_improves_the_worst_task_over_the_mean_within_the_ball():
    rng = np.random.default_rng(7)
    grads = rng.normal(size=(4, 6))
    grads[2] = -grads[0] + 0.2 * grads[2]
    c = 0.5
    combined, _ = _aggregate(weighting.get_weighting("cagrad", 4, c=c, rescale=0), grads)
    mean = grads.mean(axis=0)
    assert np.linalg.norm(combined - mean) <= c * np.linalg.norm(mean) * (1 + 1e-4)
    assert (grads @ combined).min() > (grads @ mean).min()


def test_rescale_divides_the_update():
    rng = np.random.default_rng(8)
    grads = rng.normal(size=(3, 4))
    updates = [_aggregate(weighting.get_weighting("cagrad", 3, c=0.4, rescale=r), grads)[0] for r in (0, 1, 2)]
    np.testing.assert_allclose(updates[1], updates[0] / 1.16, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(updates[2], updates[0] / 1.4, rtol=1e-4, atol=1e-6)


def test_contract_and_validation():
    method = weighting.get_weighting("cagrad", 2)
    assert method.linear and method.c == 0.5 and method.rescale == 1
    assert tuple(method.gradient_kinds) == (base.PARAMETER,)
    with pytest.raises(ValueError, match="rescale"):
        weighting.get_weighting("cagrad", 2, rescale=3)
    with pytest.raises(ValueError, match="weighting.c"):
        weighting.get_weighting("cagrad", 2, c=-1.0)


def test_xla_matches_eager():
    rng = np.random.default_rng(1)
    losses = tf.ones([3])
    grads = tf.constant(rng.normal(size=(3, 8)), tf.float32)
    eager = weighting.get_weighting("cagrad", 3).aggregate(losses, grads)
    compiled_method = weighting.get_weighting("cagrad", 3)
    compiled = tf.function(compiled_method.aggregate, jit_compile=True)(losses, grads)
    for expected, actual in zip(eager, compiled):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4)


def _slsqp_update(grads, c, divisor):
    """CAGrad with its inner problem solved as LibMTL solves it: scipy's SLSQP from the uniform weights."""
    gram = grads @ grads.T
    size = len(grads)
    uniform = np.full(size, 1 / size)
    radius = c * np.sqrt(uniform @ gram @ uniform)

    def objective(w):
        return w @ gram @ uniform + radius * np.sqrt(w @ gram @ w + 1e-8)

    inner = optimize.minimize(objective, uniform, bounds=[(0, 1)] * size, method="SLSQP", options={"ftol": 1e-12},
                              constraints={"type": "eq", "fun": lambda w: 1 - w.sum()}).x
    combined = inner @ grads
    mean = grads.mean(axis=0)
    return (mean + radius / (np.linalg.norm(combined) + 1e-8) * combined) / divisor


@pytest.mark.parametrize("size", [2, 3, 5])
def test_matches_libmtl_s_slsqp_solution_on_conflicting_gradients(size):
    """The pairwise Frank-Wolfe solver gives LibMTL's update (SLSQP) on 20
    random problems per task count, half of them with a strong conflict."""
    rng = np.random.default_rng(size)
    for case in range(20):
        grads = rng.normal(size=(size, 9)) * rng.uniform(0.1, 10.0, size=(size, 1))
        if case % 2:
            grads[1] = -rng.uniform(0.5, 2.0) * grads[0] + 0.1 * grads[1]
        combined, _ = _aggregate(weighting.get_weighting("cagrad", size, c=0.5, rescale=1), grads)
        expected = _slsqp_update(grads, 0.5, 1 + 0.5**2)
        np.testing.assert_allclose(combined, expected, atol=2e-3 * np.linalg.norm(expected), err_msg=str(case))
