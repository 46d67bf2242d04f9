"""Tests for multitask.weighting.imtl."""
import numpy as np
import tensorflow as tf

from multitask import weighting


def _libmtl_formula(grads):
    """IMTL-G as LibMTL writes it, in the gradient space, in float64."""
    grads = grads.astype(np.float64)
    unit = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    d = grads[0:1] - grads[1:]
    u = unit[0:1] - unit[1:]
    rest = grads[0] @ u.T @ np.linalg.inv(d @ u.T)
    return np.concatenate([[1.0 - rest.sum()], rest])


def test_registered_without_hyperparameters_beyond_recompute():
    method = weighting.get_weighting("imtl", 3)
    assert weighting.hyperparameters("imtl") == ["recompute_every"]
    assert set(method.gradient_kinds) == {"parameter", "representation"}
    assert method.linear


def test_hand_computed_two_tasks():
    grads = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    combined, weights = weighting.get_weighting("imtl", 2).aggregate(tf.ones([2]), grads)
    # alpha1 + alpha2 = 1 and alpha1 * 1 = alpha2 * 2.
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(combined, [2 / 3, 2 / 3], rtol=1e-6)


def test_equal_projections_on_unit_gradients():
    rng = np.random.default_rng(0)
    grads = (rng.normal(size=(4, 10)) * np.array([[0.1], [1.0], [5.0], [2.0]])).astype(np.float32)
    combined, weights = weighting.get_weighting("imtl", 4).aggregate(tf.ones([4]), grads)
    unit = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    projections = unit @ combined.numpy()
    np.testing.assert_allclose(projections, np.full(4, projections.mean()), rtol=1e-4)
    np.testing.assert_allclose(np.sum(weights), 1.0, rtol=1e-5)
    np.testing.assert_allclose(weights, _libmtl_formula(grads), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(combined, weights.numpy() @ grads, rtol=1e-5, atol=1e-5)


def test_parallel_gradients_stay_finite():
    grads = tf.constant([[1.0, 2.0], [2.0, 4.0]])
    combined, weights = weighting.get_weighting("imtl", 2).aggregate(tf.ones([2]), grads)
    np.testing.assert_allclose(weights, [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(combined, [1.0, 2.0], rtol=1e-6)


def test_single_task_is_identity():
    combined, weights = weighting.get_weighting("imtl", 1).aggregate(tf.ones([1]), tf.constant([[3.0, -1.0]]))
    np.testing.assert_allclose(weights, [1.0])
    np.testing.assert_allclose(combined, [3.0, -1.0])


def test_aggregate_under_xla_matches_eager():
    rng = np.random.default_rng(1)
    grads = tf.constant(rng.normal(size=(3, 7)), tf.float32)
    expected_combined, expected_weights = weighting.get_weighting("imtl", 3).aggregate(tf.ones([3]), grads)
    compiled = tf.function(weighting.get_weighting("imtl", 3).aggregate, jit_compile=True)
    combined, weights = compiled(tf.ones([3]), grads)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(combined, expected_combined, rtol=1e-4, atol=1e-6)
