"""Tests for multitask.weighting.aligned_mtl."""
import numpy as np
import tensorflow as tf

from multitask import weighting
from multitask.weighting import aligned_mtl


def _reference_weights(grads):
    """Aligned-MTL's weights by LibMTL's recipe (sort, truncate the rank), in float64."""
    grads = grads.astype(np.float64)
    gram = grads @ grads.T
    values, vectors = np.linalg.eigh(gram)
    rank = int(np.sum(values > values.max() * len(gram) * np.finfo(np.float32).eps))
    order = np.argsort(values)[::-1][:rank]
    values, vectors = values[order], vectors[:, order]
    matrix = np.sqrt(values[-1]) * (vectors / np.sqrt(values)) @ vectors.T
    return matrix.sum(axis=0)


def test_registered():
    method = weighting.get_weighting("aligned_mtl", 2)
    assert weighting.hyperparameters("aligned_mtl") == ["recompute_every"]
    assert set(method.gradient_kinds) == {"parameter", "representation"}
    assert method.linear


def test_hand_computed_orthogonal_gradients():
    # G = diag(9, 16): B = 3 * diag(1/3, 1/4); the aligned gradients both have norm 3.
    grads = tf.constant([[3.0, 0.0], [0.0, 4.0]])
    combined, weights = weighting.get_weighting("aligned_mtl", 2).aggregate(tf.ones([2]), grads)
    np.testing.assert_allclose(weights, [1.0, 0.75], rtol=1e-6)
    np.testing.assert_allclose(combined, [3.0, 3.0], rtol=1e-6)


def test_matches_reference_and_aligns_condition_number():
    rng = np.random.default_rng(0)
    grads = (rng.normal(size=(3, 6)) * np.array([[0.5], [2.0], [4.0]])).astype(np.float32)
    combined, weights = weighting.get_weighting("aligned_mtl", 3).aggregate(tf.ones([3]), grads)
    np.testing.assert_allclose(weights, _reference_weights(grads), rtol=1e-4)
    np.testing.assert_allclose(combined, weights.numpy() @ grads, rtol=1e-5, atol=1e-5)
    matrix = aligned_mtl.alignment_matrix(tf.constant(grads @ grads.T)).numpy()
    aligned = matrix @ grads
    smallest = np.linalg.eigvalsh(grads.astype(np.float64) @ grads.T).min()
    np.testing.assert_allclose(aligned @ aligned.T, smallest * np.eye(3), atol=1e-4 * smallest)


def test_rank_deficient_gradients_are_truncated():
    rng = np.random.default_rng(1)
    base_grads = rng.normal(size=(2, 5))
    grads = np.concatenate([base_grads, base_grads.sum(axis=0, keepdims=True)]).astype(np.float32)
    _, weights = weighting.get_weighting("aligned_mtl", 3).aggregate(tf.ones([3]), grads)
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights, _reference_weights(grads), rtol=1e-3)


def test_zero_gradients_give_zero_weights():
    combined, weights = weighting.get_weighting("aligned_mtl", 2).aggregate(tf.ones([2]), tf.zeros([2, 3]))
    np.testing.assert_array_equal(weights, [0.0, 0.0])
    np.testing.assert_array_equal(combined, [0.0, 0.0, 0.0])


def test_aggregate_under_xla_matches_eager():
    rng = np.random.default_rng(2)
    grads = tf.constant(rng.normal(size=(3, 8)), tf.float32)
    expected_combined, expected_weights = weighting.get_weighting("aligned_mtl", 3).aggregate(tf.ones([3]), grads)
    compiled = tf.function(weighting.get_weighting("aligned_mtl", 3).aggregate, jit_compile=True)
    combined, weights = compiled(tf.ones([3]), grads)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-4)
    np.testing.assert_allclose(combined, expected_combined, rtol=1e-4, atol=1e-5)
