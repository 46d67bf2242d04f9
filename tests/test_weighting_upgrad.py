"""Tests for multitask.weighting.upgrad and its solver, multitask.weighting.qp."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting
from multitask.weighting import qp
from multitask.weighting import upgrad


def _brute_force_qp(gram, lower):
    """min 0.5 v^T Q v s.t. v >= u by trying every active set (float64, small T)."""
    size = len(lower)
    for mask in itertools.product([True, False], repeat=size):
        active = np.array(mask)
        free = ~active
        values = lower.astype(np.float64).copy()
        if free.any():
            values[free] = np.linalg.solve(gram[np.ix_(free, free)], -gram[np.ix_(free, active)] @ lower[active])
        if np.all(values >= lower - 1e-12) and np.all((gram @ values)[active] >= -1e-12):
            return values
    raise AssertionError("no active set satisfies the KKT conditions")


def _reference_weights(grads, norm_eps=1e-4, reg_eps=1e-4):
    """TorchJD's UPGrad weights with an exact QP solver, in float64."""
    grads = grads.astype(np.float64)
    gram = grads @ grads.T
    trace = np.trace(gram)
    gram = (np.zeros_like(gram) if trace < norm_eps else gram / trace) + reg_eps * np.eye(len(gram))
    lower = np.eye(len(gram)) / len(gram)
    return sum(_brute_force_qp(gram, row) for row in lower)


def test_registered_with_libmtl_defaults():
    method = weighting.get_weighting("upgrad", 3)
    assert weighting.hyperparameters("upgrad") == ["norm_eps", "reg_eps", "max_iters", "recompute_every"]
    assert (method.norm_eps, method.reg_eps, method.max_iters) == (1e-4, 1e-4, 100)
    assert set(method.gradient_kinds) == {"parameter", "representation"}
    assert method.linear


def test_lower_bounded_qp_matches_brute_force():
    rng = np.random.default_rng(0)
    for size, dim in [(3, 5), (5, 3), (4, 8)]:
        grads = rng.normal(size=(size, dim))
        gram = grads @ grads.T / np.trace(grads @ grads.T) + 1e-3 * np.eye(size)
        lower = np.abs(rng.normal(size=(4, size))) * (rng.uniform(size=(4, size)) < 0.7)
        solved = qp.lower_bounded_qp(tf.constant(gram, tf.float32), tf.constant(lower, tf.float32)).numpy()
        expected = np.stack([_brute_force_qp(gram, row) for row in lower])
        np.testing.assert_allclose(solved, expected, rtol=2e-3, atol=2e-5)
        assert np.all(solved >= lower.astype(np.float32))


def test_lower_bounded_qp_rejects_bad_iterations():
    with pytest.raises(ValueError, match="max_iters"):
        qp.lower_bounded_qp(tf.eye(2), tf.ones([1, 2]), max_iters=0)


def test_hand_computed_two_conflicting_gradients():
    # g1 projected onto {x: <g2, x> >= 0} is (0.5, 0.5); g2 onto {<g1, x> >= 0}
    # is (0, 1); their mean is (0.25, 0.75) (up to the 1e-4 ridge).
    grads = tf.constant([[1.0, 0.0], [-1.0, 1.0]])
    combined, weights = weighting.get_weighting("upgrad", 2).aggregate(tf.ones([2]), grads)
    np.testing.assert_allclose(combined, [0.25, 0.75], atol=1e-3)
    np.testing.assert_allclose(weights, [1.0, 0.75], atol=1e-3)


def test_mean_when_gradients_do_not_conflict():
    rng = np.random.default_rng(1)
    grads = np.abs(rng.normal(size=(4, 6))).astype(np.float32)  # pairwise inner products > 0
    combined, weights = weighting.get_weighting("upgrad", 4).aggregate(tf.ones([4]), grads)
    np.testing.assert_allclose(weights, np.full(4, 0.25), rtol=1e-6)
    np.testing.assert_allclose(combined, grads.mean(axis=0), rtol=1e-5)


def test_never_conflicts_with_a_task():
    for seed, tasks, dim in [(2, 2, 4), (3, 4, 10), (4, 6, 3), (5, 5, 20)]:
        rng = np.random.default_rng(seed)
        grads = (rng.normal(size=(tasks, dim)) * rng.uniform(0.1, 10.0, size=(tasks, 1))).astype(np.float32)
        method = weighting.get_weighting("upgrad", tasks)
        combined, weights = method.aggregate(tf.ones([tasks]), grads)
        weights = weights.numpy().astype(np.float64)
        grads64 = grads.astype(np.float64)
        products = grads64 @ combined.numpy().astype(np.float64)
        gram = grads64 @ grads64.T
        # Exactly non-negative for the ridge-regularised Gram matrix the QP
        # uses: <g_j, combined> >= -reg_eps * trace(G) * w_j.
        slack = (method.reg_eps * np.trace(gram) * weights
                 + 1e-5 * np.linalg.norm(grads64, axis=1) * np.linalg.norm(combined))
        assert np.all(products >= -slack), (seed, products)
        assert np.all(weights >= 1.0 / tasks - 1e-6)
        np.testing.assert_allclose(weights, _reference_weights(grads), rtol=5e-3)
        np.testing.assert_allclose(combined, weights @ grads64, rtol=1e-4, atol=1e-4)


def test_zero_gradients_give_the_mean():
    weights = upgrad.upgrad_weights(tf.zeros([3, 3]))
    np.testing.assert_allclose(weights, np.full(3, 1 / 3), rtol=1e-6)


def test_aggregate_under_xla_matches_eager():
    rng = np.random.default_rng(6)
    grads = tf.constant(rng.normal(size=(4, 9)), tf.float32)
    expected_combined, expected_weights = weighting.get_weighting("upgrad", 4).aggregate(tf.ones([4]), grads)
    compiled = tf.function(weighting.get_weighting("upgrad", 4).aggregate, jit_compile=True)
    combined, weights = compiled(tf.ones([4]), grads)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-4)
    np.testing.assert_allclose(combined, expected_combined, rtol=1e-4, atol=1e-5)


def test_bad_hyperparameters_rejected():
    cases = [({"norm_eps": -1.0}, "norm_eps"), ({"reg_eps": 0.0}, "reg_eps"), ({"max_iters": 0}, "max_iters")]
    for kwargs, field in cases:
        with pytest.raises(ValueError, match=field):
            weighting.get_weighting("upgrad", 2, **kwargs)
