"""Tests for multitask.weighting.dwa."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting

LOSSES = np.array([[2.0, 1.0, 4.0], [1.0, 0.9, 4.0], [0.8, 0.5, 3.0], [0.7, 0.4, 3.5]], np.float32)


def _dwa_by_hand(previous, earlier, temperature=2.0):
    ratios = previous / earlier
    exp = np.exp(ratios / temperature)
    return len(ratios) * exp / exp.sum()


def test_registered_with_temperature_and_rejects_bad_ones():
    assert weighting.hyperparameters("dwa") == ["temperature"]
    assert weighting.get_weighting("dwa", 2).temperature == 2.0
    for bad in (0, -1.0, "2", True):
        with pytest.raises(ValueError, match="temperature"):
            weighting.get_weighting("dwa", 2, temperature=bad)


def test_weights_from_the_loss_history():
    method = weighting.get_weighting("dwa", 3)
    seen = [method.loss_weights(tf.constant(row)).numpy() for row in LOSSES]
    np.testing.assert_allclose(seen[0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(seen[1], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(seen[2], _dwa_by_hand(LOSSES[1], LOSSES[0]), rtol=1e-6)
    np.testing.assert_allclose(seen[3], _dwa_by_hand(LOSSES[2], LOSSES[1]), rtol=1e-6)
    # Ratios [0.5, 0.9, 1.0]: the task whose loss fell least weighs most.
    assert seen[2][2] > seen[2][1] > 1.0 > seen[2][0]
    np.testing.assert_allclose(np.sum(seen[3]), 3.0, rtol=1e-6)
    np.testing.assert_allclose(method.previous_losses, LOSSES[3])
    np.testing.assert_allclose(method.earlier_losses, LOSSES[2])


def test_temperature_and_combine_losses():
    method = weighting.get_weighting("dwa", 3, temperature=0.5)
    losses = tf.Variable(LOSSES[0])
    for row in LOSSES[:3]:
        losses.assign(row)
        with tf.GradientTape() as tape:
            total = method.combine_losses(losses)
    expected = _dwa_by_hand(LOSSES[1], LOSSES[0], temperature=0.5)
    np.testing.assert_allclose(total, expected @ LOSSES[2], rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, losses), expected, rtol=1e-6)
    np.testing.assert_allclose(method.last_weights, expected, rtol=1e-6)
    assert int(method.calls) == 3


def test_checkpoint_restores_history(tmp_path):
    method = weighting.get_weighting("dwa", 3)
    for row in LOSSES[:2]:
        method.combine_losses(tf.constant(row))
    path = tf.train.Checkpoint(weighting=method).write(str(tmp_path / "ckpt"))
    restored = weighting.get_weighting("dwa", 3)
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    expected = _dwa_by_hand(LOSSES[1], LOSSES[0])
    np.testing.assert_allclose(restored.loss_weights(tf.constant(LOSSES[2])), expected, rtol=1e-6)


def test_aggregate_under_xla_matches_eager():
    eager, compiled = weighting.get_weighting("dwa", 3), weighting.get_weighting("dwa", 3)
    aggregate = tf.function(compiled.aggregate, jit_compile=True)
    grads = tf.reshape(tf.range(12, dtype=tf.float32), [3, 4])
    for row in LOSSES:
        expected_combined, expected_weights = eager.aggregate(tf.constant(row), grads)
        combined, weights = aggregate(tf.constant(row), grads)
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-6)
        np.testing.assert_allclose(combined, expected_combined, rtol=1e-6)
    np.testing.assert_allclose(weights, _dwa_by_hand(LOSSES[2], LOSSES[1]), rtol=1e-6)
    np.testing.assert_allclose(combined, weights.numpy() @ grads.numpy(), rtol=1e-5)
