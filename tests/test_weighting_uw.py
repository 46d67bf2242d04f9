"""Tests for multitask.weighting.uw."""
import numpy as np
import tensorflow as tf

from multitask import weighting


def test_registered_and_starts_at_equal_weights():
    method = weighting.get_weighting("uw", 3)
    assert method.loss_level
    assert weighting.hyperparameters("uw") == []
    np.testing.assert_allclose(method.loss_weights(tf.constant([1.0, 2.0, 3.0])), [1.0, 1.0, 1.0])
    assert [v.name for v in method.trainable_variables] == ["log_variances:0"]


def test_combine_losses_closed_form_and_gradients():
    method = weighting.get_weighting("uw", 3)
    s = np.array([0.5, -1.0, 2.0], np.float32)
    method.log_variances.assign(s)
    losses = tf.Variable([0.3, 2.0, 5.0])
    with tf.GradientTape() as tape:
        total = method.combine_losses(losses)
    grad_losses, grad_s = tape.gradient(total, [losses, method.log_variances])
    expected_weights = np.exp(-s)
    np.testing.assert_allclose(total, np.sum(expected_weights * losses.numpy() + s), rtol=1e-6)
    np.testing.assert_allclose(grad_losses, expected_weights, rtol=1e-6)
    np.testing.assert_allclose(grad_s, 1.0 - expected_weights * losses.numpy(), rtol=1e-6)
    np.testing.assert_allclose(method.last_weights, expected_weights, rtol=1e-6)
    assert int(method.calls) == 1


def test_gradient_steps_move_s_toward_log_losses():
    method = weighting.get_weighting("uw", 2)
    losses = tf.constant([4.0, 0.25])
    target = np.log(losses.numpy())

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            total = method.combine_losses(losses)
        grad = tape.gradient(total, method.log_variances)
        method.log_variances.assign_sub(0.1 * grad)

    distance = np.abs(method.log_variances.numpy() - target)
    for _ in range(3):
        step()
        new_distance = np.abs(method.log_variances.numpy() - target)
        assert np.all(new_distance < distance)
        distance = new_distance
    # The first loss is larger than 1, so its s grows and its weight falls.
    assert method.log_variances.numpy()[0] > 0 > method.log_variances.numpy()[1]
    for _ in range(200):
        step()
    np.testing.assert_allclose(method.log_variances.numpy(), target, atol=1e-2)


def test_checkpoint_restores_log_variances(tmp_path):
    method = weighting.get_weighting("uw", 2)
    method.log_variances.assign([0.7, -0.2])
    method.combine_losses(tf.constant([1.0, 1.0]))
    path = tf.train.Checkpoint(weighting=method).write(str(tmp_path / "ckpt"))
    restored = weighting.get_weighting("uw", 2)
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    np.testing.assert_allclose(restored.log_variances, [0.7, -0.2])
    assert int(restored.calls) == 1


def test_aggregate_under_xla_matches_eager():
    eager, compiled = weighting.get_weighting("uw", 2), weighting.get_weighting("uw", 2)
    for method in (eager, compiled):
        method.log_variances.assign([0.5, -0.5])
    losses = tf.constant([1.0, 3.0])
    grads = tf.constant([[1.0, 2.0, 0.0], [0.0, -1.0, 4.0]])
    expected_combined, expected_weights = eager.aggregate(losses, grads)
    combined, weights = tf.function(compiled.aggregate, jit_compile=True)(losses, grads)
    np.testing.assert_allclose(weights, np.exp([-0.5, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(expected_weights, np.exp([-0.5, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(combined, expected_combined, rtol=1e-6)
    np.testing.assert_allclose(combined, np.exp([-0.5, 0.5]) @ grads.numpy(), rtol=1e-6)
    total = tf.function(compiled.combine_losses, jit_compile=True)(losses)
    np.testing.assert_allclose(total, np.sum(np.exp([-0.5, 0.5]) * [1.0, 3.0] + [0.5, -0.5]), rtol=1e-6)
