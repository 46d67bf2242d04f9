"""Tests for multitask.weighting.db_mtl."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting


def _steps(seed, count=3, tasks=3, dim=5):
    rng = np.random.default_rng(seed)
    return [
        (rng.uniform(0.5, 3.0, size=tasks).astype(np.float32),
         (rng.normal(size=(tasks, dim)) * rng.uniform(0.1, 10.0, size=(tasks, 1))).astype(np.float32))
        for _ in range(count)
    ]


def _reference(steps, beta, beta_sigma):
    """LibMTL's DB_MTL recursion, step by step, in float64."""
    buffer = np.zeros_like(steps[0][1], dtype=np.float64)
    results = []
    for t, (losses, grads) in enumerate(steps, start=1):
        log_grads = grads.astype(np.float64) / (losses.astype(np.float64)[:, None] + 1e-8)
        buffer = log_grads + beta / t ** beta_sigma * (buffer - log_grads)
        norms = np.linalg.norm(buffer, axis=1)
        weights = norms.max() / (norms + 1e-8)
        results.append((weights @ buffer, weights))
    return results


def test_registered_with_libmtl_defaults():
    method = weighting.get_weighting("db_mtl", 2)
    assert weighting.hyperparameters("db_mtl") == ["beta", "beta_sigma"]
    assert (method.beta, method.beta_sigma) == (0.9, 0.0)
    assert method.gradient_kinds == ("parameter",)
    assert not method.linear
    with pytest.raises(ValueError, match="recompute_every"):
        weighting.get_weighting("db_mtl", 2, recompute_every=2)


@pytest.mark.parametrize("beta,beta_sigma", [(0.9, 0.0), (0.9, 0.5), (0.0, 0.0)])
def test_matches_hand_computation(beta, beta_sigma):
    steps = _steps(0)
    method = weighting.get_weighting("db_mtl", 3, beta=beta, beta_sigma=beta_sigma)
    for (losses, grads), (expected_combined, expected_weights) in zip(steps, _reference(steps, beta, beta_sigma)):
        combined, weights = method.aggregate(losses, grads)
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5)
        np.testing.assert_allclose(combined, expected_combined, rtol=1e-5, atol=1e-5)
    assert int(method.calls) == 3


def test_first_step_by_hand():
    # Step 1 with beta = 0.5: m = 0.5 * g / L; norms 1 and 0.25, weights 1 and 4.
    method = weighting.get_weighting("db_mtl", 2, beta=0.5)
    combined, weights = method.aggregate(tf.constant([1.0, 2.0]), tf.constant([[2.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(weights, [1.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(combined, [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(method.grad_buffer, [[1.0, 0.0], [0.0, 0.25]], rtol=1e-6)


@pytest.mark.parametrize("build_first", [True, False])
def test_checkpoint_restores_moving_average(tmp_path, build_first):
    steps = _steps(1, count=3)
    original = weighting.get_weighting("db_mtl", 3, beta_sigma=0.5)
    for losses, grads in steps[:2]:
        original.aggregate(losses, grads)
    path = tf.train.Checkpoint(weighting=original).write(str(tmp_path / "ckpt"))
    saved_buffer = original.grad_buffer.numpy()
    expected_combined, expected_weights = original.aggregate(*steps[2])

    restored = weighting.get_weighting("db_mtl", 3, beta_sigma=0.5)
    if build_first:
        restored.build(5)
        tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
        np.testing.assert_array_equal(restored.grad_buffer, saved_buffer)
    else:
        # Restored before the buffer exists: filled when the first step creates it.
        tf.train.Checkpoint(weighting=restored).read(path)
    assert int(restored.calls) == 2
    combined, weights = restored.aggregate(*steps[2])
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-6)
    np.testing.assert_allclose(combined, expected_combined, rtol=1e-6)


def test_aggregate_under_xla_matches_eager():
    steps = _steps(2)
    eager = weighting.get_weighting("db_mtl", 3, beta_sigma=0.5)
    compiled_method = weighting.get_weighting("db_mtl", 3, beta_sigma=0.5)
    compiled = tf.function(compiled_method.aggregate, jit_compile=True)
    for losses, grads in steps:
        expected_combined, expected_weights = eager.aggregate(losses, grads)
        combined, weights = compiled(tf.constant(losses), tf.constant(grads))
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5)
        np.testing.assert_allclose(combined, expected_combined, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(compiled_method.grad_buffer, eager.grad_buffer, rtol=1e-5)


def test_buffer_created_inside_replica_context(two_cpu_strategy):
    steps = _steps(3, count=2)
    expected = _reference(steps, 0.9, 0.0)
    with two_cpu_strategy.scope():
        method = weighting.get_weighting("db_mtl", 3)

    @tf.function
    def step(losses, grads):
        return two_cpu_strategy.run(method.aggregate, args=(losses, grads))

    for (losses, grads), (expected_combined, expected_weights) in zip(steps, expected):
        combined, weights = step(tf.constant(losses), tf.constant(grads))
        for replica_combined, replica_weights in zip(
            two_cpu_strategy.experimental_local_results(combined),
            two_cpu_strategy.experimental_local_results(weights),
        ):
            np.testing.assert_allclose(replica_weights, expected_weights, rtol=1e-5)
            np.testing.assert_allclose(replica_combined, expected_combined, rtol=1e-5, atol=1e-5)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="beta must be in"):
        weighting.get_weighting("db_mtl", 2, beta=1.5)
    with pytest.raises(ValueError, match="beta_sigma"):
        weighting.get_weighting("db_mtl", 2, beta_sigma=-1.0)
    method = weighting.get_weighting("db_mtl", 2)
    method.build(4)
    with pytest.raises(ValueError, match="length 4, got 3"):
        method.aggregate(tf.ones([2]), tf.ones([2, 3]))
