"""Tests for multitask.weighting.rlw."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import weighting

LOSSES = tf.constant([1.0, 2.0, 3.0])


def _draws(method, n):
    draws = []
    for _ in range(n):
        method.combine_losses(LOSSES)
        draws.append(method.last_weights.numpy())
    return np.stack(draws)


def test_registered_with_seed_and_rejects_bad_ones():
    assert weighting.hyperparameters("rlw") == ["seed"]
    for bad in (1.5, "0", None, True):
        with pytest.raises(ValueError, match="seed"):
            weighting.get_weighting("rlw", 3, seed=bad)


def test_weights_are_the_softmax_of_the_seeded_draw():
    method = weighting.get_weighting("rlw", 3, seed=7)
    method.calls.assign(5)
    bits = tf.random.stateless_uniform(
        [3], seed=tf.constant([7, 5], tf.int64), minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    ).numpy()
    z = tf.math.ndtri(((bits >> 8).astype(np.float32) + 0.5) / 2**24).numpy()
    expected = 3 * np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(method.loss_weights(LOSSES), expected, rtol=1e-6)


def test_reproducible_positive_and_sum_to_num_tasks():
    first = _draws(weighting.get_weighting("rlw", 3), 6)
    second = _draws(weighting.get_weighting("rlw", 3), 6)
    other_seed = _draws(weighting.get_weighting("rlw", 3, seed=1), 6)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other_seed)
    assert all(not np.allclose(first[i], first[i + 1]) for i in range(5))
    assert np.all(first > 0)
    np.testing.assert_allclose(first.sum(axis=1), 3.0, rtol=1e-6)


def test_combine_losses_is_the_weighted_sum():
    method = weighting.get_weighting("rlw", 3)
    losses = tf.Variable(LOSSES)
    with tf.GradientTape() as tape:
        total = method.combine_losses(losses)
    weights = method.last_weights.numpy()
    np.testing.assert_allclose(total, weights @ LOSSES.numpy(), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, losses), weights, rtol=1e-6)


def test_checkpoint_restores_the_draw_sequence(tmp_path):
    method = weighting.get_weighting("rlw", 3)
    _draws(method, 2)
    path = tf.train.Checkpoint(weighting=method).write(str(tmp_path / "ckpt"))
    later = _draws(method, 2)
    restored = weighting.get_weighting("rlw", 3)
    tf.train.Checkpoint(weighting=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(_draws(restored, 2), later)


def test_same_weights_on_every_replica(two_cpu_strategy):
    with two_cpu_strategy.scope():
        method = weighting.get_weighting("rlw", 3, seed=3)

    reference = weighting.get_weighting("rlw", 3, seed=3)

    @tf.function
    def step():
        return two_cpu_strategy.run(method.combine_losses, args=(LOSSES,))

    for _ in range(2):
        per_replica = [t.numpy() for t in two_cpu_strategy.experimental_local_results(step())]
        expected = reference.combine_losses(LOSSES).numpy()
        np.testing.assert_allclose(per_replica, [expected, expected], rtol=1e-6)
    assert int(method.calls.numpy()) == 2
    np.testing.assert_allclose(method.last_weights, reference.last_weights, rtol=1e-6)


def test_aggregate_under_xla_matches_eager():
    eager, compiled = weighting.get_weighting("rlw", 3), weighting.get_weighting("rlw", 3)
    aggregate = tf.function(compiled.aggregate, jit_compile=True)
    grads = tf.reshape(tf.range(12, dtype=tf.float32), [3, 4])
    for _ in range(3):
        expected_combined, expected_weights = eager.aggregate(LOSSES, grads)
        combined, weights = aggregate(LOSSES, grads)
        # Equal up to the float rounding of ndtri, which XLA computes differently.
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5)
        np.testing.assert_allclose(combined, expected_combined, rtol=1e-5)
