"""Tests for multitask.weighting.gradnorm."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting


def test_registered_gradient_level_with_defaults():
    method = weighting.get_weighting("gradnorm", 2)
    assert not method.loss_level
    assert weighting.hyperparameters("gradnorm") == ["alpha", "learning_rate", "recompute_every"]
    assert (method.alpha, method.learning_rate) == (1.5, 0.025)
    assert method.trainable_variables == ()
    for kwargs in ({"alpha": -1.0}, {"learning_rate": 0.0}, {"learning_rate": "big"}, {"recompute_every": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            weighting.get_weighting("gradnorm", 2, **kwargs)


def test_first_step_closed_form_larger_norm_loses_weight():
    method = weighting.get_weighting("gradnorm", 2)
    grads = tf.constant([[3.0, 0.0], [0.0, 1.0]])
    combined, weights = method.aggregate(tf.constant([1.0, 1.0]), grads)
    # Combined with the weights before the update (all ones).
    np.testing.assert_allclose(weights, [1.0, 1.0])
    np.testing.assert_allclose(combined, [3.0, 1.0])
    # G = [3, 1], target = mean(G) * 1 = 2, step = 0.025 * sign(G - 2) * ||g||.
    stepped = np.array([1.0 - 0.025 * 3.0, 1.0 + 0.025 * 1.0])
    np.testing.assert_allclose(method.task_weights, 2 * stepped / stepped.sum(), rtol=1e-6)
    np.testing.assert_allclose(method.initial_losses, [1.0, 1.0])
    # The new weights apply from the next call.
    combined, weights = method.aggregate(tf.constant([1.0, 1.0]), grads)
    np.testing.assert_allclose(weights, 2 * stepped / stepped.sum(), rtol=1e-6)
    np.testing.assert_allclose(combined, weights.numpy() @ grads.numpy(), rtol=1e-6)


def test_inverse_training_rate_uses_first_losses():
    method = weighting.get_weighting("gradnorm", 2, alpha=1.0, learning_rate=0.1)
    grads = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    method.aggregate(tf.constant([2.0, 4.0]), grads)  # Equal norms: no change.
    np.testing.assert_allclose(method.task_weights, [1.0, 1.0])
    # Task 0 kept its loss (ratio 1), task 1 halved it (ratio 0.5): r = [4/3, 2/3],
    # targets = [4/3, 2/3], G = [1, 1], so task 0 (the slower one) gains weight.
    method.aggregate(tf.constant([2.0, 2.0]), grads)
    stepped = np.array([1.0 + 0.1, 1.0 - 0.1])
    np.testing.assert_allclose(method.task_weights, 2 * stepped / stepped.sum(), rtol=1e-6)
    np.testing.assert_allclose(method.initial_losses, [2.0, 4.0])


def test_weights_stay_positive_and_sum_to_num_tasks():
    method = weighting.get_weighting("gradnorm", 3, learning_rate=1.0)
    rng = np.random.default_rng(0)
    scales = np.array([[100.0], [1.0], [0.01]], np.float32)
    for _ in range(30):
        grads = tf.constant(rng.normal(size=(3, 8)).astype(np.float32) * scales)
        losses = tf.constant(rng.uniform(0.1, 2.0, size=3).astype(np.float32))
        _, weights = method.aggregate(losses, grads)
        assert np.all(weights.numpy() > 0)
        assert np.all(method.task_weights.numpy() > 0)
        np.testing.assert_allclose(method.task_weights.numpy().sum(), 3.0, rtol=1e-5)


def test_checkpoint_restores_weights_and_initial_losses(tmp_path):
    method = weighting.get_weighting("gradnorm", 2)
    grads = tf.constant([[3.0, 0.0], [0.0, 1.0]])
    method.aggregate(tf.constant([1.0, 2.0]), grads)
    path = tf.train.Checkpoint(weighting=method).write(str(tmp_path / "ckpt"))
    restored = weighting.get_weighting("gradnorm", 2)
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    np.testing.assert_allclose(restored.task_weights, method.task_weights)
    np.testing.assert_allclose(restored.initial_losses, [1.0, 2.0])
    assert bool(restored.has_initial_losses)
    np.testing.assert_allclose(
        restored.aggregate(tf.constant([0.5, 2.0]), grads)[0], method.aggregate(tf.constant([0.5, 2.0]), grads)[0]
    )


def test_aggregate_under_xla_matches_eager():
    eager, compiled = weighting.get_weighting("gradnorm", 3), weighting.get_weighting("gradnorm", 3)
    aggregate = tf.function(compiled.aggregate, jit_compile=True)
    rng = np.random.default_rng(1)
    for _ in range(4):
        grads = tf.constant(rng.normal(size=(3, 5)).astype(np.float32) * np.array([[5.0], [1.0], [0.2]], np.float32))
        losses = tf.constant(rng.uniform(0.5, 2.0, size=3).astype(np.float32))
        expected_combined, expected_weights = eager.aggregate(losses, grads)
        combined, weights = aggregate(losses, grads)
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5)
        np.testing.assert_allclose(combined, expected_combined, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled.task_weights, eager.task_weights, rtol=1e-5)
    assert not np.allclose(compiled.task_weights, 1.0)


def test_recompute_every_reuses_weights_between_updates():
    method = weighting.get_weighting("gradnorm", 2, recompute_every=2)
    grads = tf.constant([[3.0, 0.0], [0.0, 1.0]])
    method.aggregate(tf.constant([1.0, 1.0]), grads)
    updated = method.task_weights.numpy()
    _, reused = method.aggregate(tf.constant([1.0, 1.0]), grads)
    np.testing.assert_allclose(reused, [1.0, 1.0])
    np.testing.assert_allclose(method.task_weights, updated)
