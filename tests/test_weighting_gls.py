"""Tests for multitask.weighting.gls."""
import numpy as np
import tensorflow as tf

from multitask import weighting

LOSSES = np.array([0.5, 2.0, 8.0, 3.0], np.float32)


def test_value_is_the_geometric_mean_and_gradient_the_hand_formula():
    method = weighting.get_weighting("gls", 4)
    assert method.loss_level
    losses = tf.Variable(LOSSES)
    with tf.GradientTape() as tape:
        total = method.combine_losses(losses)
    geometric_mean = np.prod(LOSSES.astype(np.float64)) ** (1 / 4)
    np.testing.assert_allclose(total, geometric_mean, rtol=1e-6)
    expected_grad = geometric_mean / (4 * LOSSES)
    np.testing.assert_allclose(tape.gradient(total, losses), expected_grad, rtol=1e-5)
    np.testing.assert_allclose(method.last_weights, expected_grad, rtol=1e-5)
    np.testing.assert_allclose(method.loss_weights(tf.constant(LOSSES)), expected_grad, rtol=1e-5)
    assert int(method.calls) == 1


def test_geometric_mean_of_many_small_losses_does_not_underflow():
    method = weighting.get_weighting("gls", 64)
    total = method.combine_losses(tf.fill([64], 1e-3))
    np.testing.assert_allclose(total, 1e-3, rtol=1e-4)


def test_checkpoint_restores_state(tmp_path):
    method = weighting.get_weighting("gls", 4)
    method.combine_losses(tf.constant(LOSSES))
    path = tf.train.Checkpoint(weighting=method).write(str(tmp_path / "ckpt"))
    restored = weighting.get_weighting("gls", 4)
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    np.testing.assert_allclose(restored.last_weights, method.last_weights)
    assert int(restored.calls) == 1


def test_aggregate_under_xla_matches_eager():
    eager, compiled = weighting.get_weighting("gls", 4), weighting.get_weighting("gls", 4)
    grads = tf.reshape(tf.range(20, dtype=tf.float32), [4, 5])
    expected_combined, expected_weights = eager.aggregate(tf.constant(LOSSES), grads)
    combined, weights = tf.function(compiled.aggregate, jit_compile=True)(tf.constant(LOSSES), grads)
    hand = np.prod(LOSSES.astype(np.float64)) ** (1 / 4) / (4 * LOSSES)
    np.testing.assert_allclose(weights, hand, rtol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-6)
    np.testing.assert_allclose(combined, expected_combined, rtol=1e-5)
    np.testing.assert_allclose(combined, hand @ grads.numpy(), rtol=1e-5)
    total = tf.function(compiled.combine_losses, jit_compile=True)(tf.constant(LOSSES))
    np.testing.assert_allclose(total, np.prod(LOSSES.astype(np.float64)) ** (1 / 4), rtol=1e-6)
