"""Tests for multitask.weighting.nash_mtl."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting
from multitask.weighting import nash_mtl


def _solvable_grads(seed, scales=(1.0, 1.0, 1.0, 1.0), dim=12):
    """Task gradients sharing a common direction, so the bargaining problem has a solution."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=dim)
    grads = 0.8 * rng.normal(size=(len(scales), dim)) + common
    return (grads * np.asarray(scales)[:, None]).astype(np.float32)


def test_registered_with_libmtl_defaults():
    method = weighting.get_weighting("nash_mtl", 3)
    assert weighting.hyperparameters("nash_mtl") == ["update_weights_every", "optim_niter", "max_norm"]
    assert (method.update_weights_every, method.optim_niter, method.max_norm) == (1, 20, 1.0)
    assert method.recompute_every == 1
    assert method.gradient_kinds == ("parameter",)
    assert method.linear and not method.loss_level


def test_weights_solve_the_bargaining_equation():
    for seed, scales in [(0, (1.0, 1.0, 1.0, 1.0)), (1, (0.01, 1.0, 30.0, 2.0)), (2, (5.0, 0.2, 1.0))]:
        grads = _solvable_grads(seed, scales)
        method = weighting.get_weighting("nash_mtl", len(scales), max_norm=0.0)
        combined, alpha = method.aggregate(tf.ones([len(scales)]), grads)
        alpha = alpha.numpy().astype(np.float64)
        gram = grads.astype(np.float64) @ grads.T.astype(np.float64)
        assert np.all(alpha > 0)
        np.testing.assert_allclose((gram @ alpha) * alpha, np.ones(len(scales)), rtol=1e-4)
        np.testing.assert_allclose(combined, alpha @ grads, rtol=1e-5, atol=1e-6)


def test_orthogonal_gradients_get_inverse_norms():
    grads = np.array([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 20.0]], np.float32)
    alpha = nash_mtl.bargaining_weights(tf.constant(grads @ grads.T))
    np.testing.assert_allclose(alpha, [1 / 3.0, 2.0, 1 / 20.0], rtol=1e-5)


def test_clips_combined_gradient_to_max_norm():
    grads = 10.0 * _solvable_grads(3, (1.0, 2.0, 3.0))
    unclipped, alpha = weighting.get_weighting("nash_mtl", 3, max_norm=0.0).aggregate(tf.ones([3]), grads)
    method = weighting.get_weighting("nash_mtl", 3, max_norm=0.5)
    combined, weights = method.aggregate(tf.ones([3]), grads)
    assert np.linalg.norm(unclipped) > 0.5
    np.testing.assert_allclose(np.linalg.norm(combined), 0.5, rtol=1e-5)
    factor = 0.5 / np.linalg.norm(unclipped)
    np.testing.assert_allclose(weights, alpha.numpy() * factor, rtol=1e-5)
    np.testing.assert_allclose(combined, weights.numpy() @ grads, rtol=1e-4, atol=1e-6)
    # last_weights keeps the unclipped solution, the one later calls reuse.
    np.testing.assert_allclose(method.last_weights, alpha, rtol=1e-6)
    # alpha^T G alpha = sum_i (G alpha)_i alpha_i = T: the update's norm is
    # sqrt(T) whatever the gradients' scale, so it is left alone when
    # max_norm > sqrt(T).
    np.testing.assert_allclose(np.linalg.norm(unclipped), np.sqrt(3.0), rtol=1e-4)
    small = 1e-3 * grads
    combined, weights = weighting.get_weighting("nash_mtl", 3, max_norm=2.0).aggregate(tf.ones([3]), small)
    np.testing.assert_allclose(np.linalg.norm(combined), np.sqrt(3.0), rtol=1e-4)
    np.testing.assert_allclose(weights, alpha.numpy() * 1e3, rtol=1e-4)


def test_zero_gradient_task_gets_zero_weight():
    grads = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]], np.float32)
    method = weighting.get_weighting("nash_mtl", 3, max_norm=0.0)
    _, alpha = method.aggregate(tf.ones([3]), grads)
    np.testing.assert_allclose(alpha, [1.0, 0.0, 0.5], rtol=1e-5)


def test_opposite_gradients_stay_finite_and_clipped():
    grads = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    combined, weights = weighting.get_weighting("nash_mtl", 2).aggregate(tf.ones([2]), grads)
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(combined))
    assert np.linalg.norm(combined) <= 1.0 + 1e-6


def test_update_weights_every_reuses_weights_between_solves():
    sets = [_solvable_grads(seed, (1.0, 2.0, 0.5)) for seed in range(4)]
    method = weighting.get_weighting("nash_mtl", 3, update_weights_every=3, max_norm=0.0)
    assert method.recompute_every == 3
    results = [method.aggregate(tf.ones([3]), grads) for grads in sets]
    first = results[0][1].numpy()
    for (combined, weights), grads in zip(results[1:3], sets[1:3]):
        np.testing.assert_array_equal(weights, first)
        np.testing.assert_allclose(combined, first @ grads, rtol=1e-5, atol=1e-6)
    # The 4th call solves again, for its own gradients.
    _, fresh = weighting.get_weighting("nash_mtl", 3, max_norm=0.0).aggregate(tf.ones([3]), sets[3])
    np.testing.assert_allclose(results[3][1], fresh, rtol=1e-6)
    assert not np.allclose(results[3][1], first, rtol=1e-3)
    assert int(method.calls) == 4


def test_reused_weights_are_still_clipped():
    big = 10.0 * _solvable_grads(5, (1.0, 1.0))
    method = weighting.get_weighting("nash_mtl", 2, update_weights_every=2)
    method.aggregate(tf.ones([2]), big / 100.0)
    combined, _ = method.aggregate(tf.ones([2]), big)
    np.testing.assert_allclose(np.linalg.norm(combined), 1.0, rtol=1e-5)


def test_aggregate_under_xla_matches_eager():
    sets = [_solvable_grads(seed, (1.0, 3.0, 0.3)) for seed in (6, 7, 8)]
    eager = weighting.get_weighting("nash_mtl", 3, update_weights_every=2)
    compiled_method = weighting.get_weighting("nash_mtl", 3, update_weights_every=2)
    compiled = tf.function(compiled_method.aggregate, jit_compile=True)
    for grads in sets:
        expected_combined, expected_weights = eager.aggregate(tf.ones([3]), grads)
        combined, weights = compiled(tf.ones([3]), tf.constant(grads))
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-4)
        np.testing.assert_allclose(combined, expected_combined, rtol=1e-4, atol=1e-6)


def test_bad_hyperparameters_rejected():
    for kwargs, field in [({"update_weights_every": 0}, "update_weights_every"), ({"optim_niter": 0}, "optim_niter"),
                          ({"optim_niter": 2.5}, "optim_niter")]:
        with pytest.raises(ValueError, match=field):
            weighting.get_weighting("nash_mtl", 2, **kwargs)
