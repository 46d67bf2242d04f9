"""Tests of the shared weighting solvers and of the XLA-stable random numbers."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from multitask.weighting import solvers
from multitask.weighting import stateless_random

# Graph mode: an eager tf.while_loop runs its body op by op, slowly.
_min_norm_weights = tf.function(solvers.min_norm_weights)


def _exact_min_norm(gram):
    """The min-norm weights by enumerating supports (exact for small T)."""
    size = len(gram)
    best_cost, best = np.inf, None
    for count in range(1, size + 1):
        for support in itertools.combinations(range(size), count):
            support = list(support)
            system = np.zeros((count + 1, count + 1))
            system[:count, :count] = gram[np.ix_(support, support)]
            system[:count, count] = -1.0
            system[count, :count] = 1.0
            rhs = np.zeros(count + 1)
            rhs[count] = 1.0
            try:
                solution = np.linalg.solve(system, rhs)
            except np.linalg.LinAlgError:
                continue
            if (solution[:count] < -1e-12).any():
                continue
            weights = np.zeros(size)
            weights[support] = solution[:count]
            cost = weights @ gram @ weights
            if cost < best_cost:
                best_cost, best = cost, weights
    return best


def _assert_on_simplex(weights, atol=1e-6):
    weights = np.asarray(weights)
    assert (weights >= 0.0).all()
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=atol)


def test_min_norm_two_closed_form():
    gamma, cost = solvers.min_norm_two(1.0, 0.0, 1.0)  # Orthogonal unit vectors.
    assert gamma.numpy() == pytest.approx(0.5)
    assert cost.numpy() == pytest.approx(0.5)
    gamma, cost = solvers.min_norm_two(1.0, 2.0, 4.0)  # g2 = 2 g1: the vertex g1.
    assert gamma.numpy() == pytest.approx(1.0)
    assert cost.numpy() == pytest.approx(1.0)


def test_min_norm_weights_two_tasks_is_the_analytic_point():
    g1, g2 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    gram = np.stack([g1, g2]) @ np.stack([g1, g2]).T
    weights = solvers.min_norm_weights(tf.constant(gram, tf.float32)).numpy()
    # gamma = (|g2|^2 - <g1,g2>) / |g1 - g2|^2 = 4 / 5.
    np.testing.assert_allclose(weights, [0.8, 0.2], atol=1e-6)


@pytest.mark.parametrize("size,dim", [(3, 5), (3, 2), (5, 8), (6, 3)])
def test_min_norm_weights_meet_the_kkt_conditions(size, dim):
    rng = np.random.default_rng(size * 10 + dim)
    for _ in range(5):
        grads = rng.normal(size=(size, dim)) * np.exp(rng.normal(size=(size, 1)))
        gram = grads @ grads.T
        weights = _min_norm_weights(tf.constant(gram, tf.float32)).numpy()
        _assert_on_simplex(weights)
        products = gram @ weights / gram.diagonal().max()
        value = weights @ products
        # (G w)_i >= w^T G w everywhere, with equality on the support.
        assert products.min() >= value - 1e-4
        np.testing.assert_allclose(products[weights > 1e-4], value, atol=1e-4)
        exact = _exact_min_norm(gram)
        assert weights @ gram @ weights <= exact @ gram @ exact + 1e-4 * gram.diagonal().max()


def test_min_norm_weights_edge_cases():
    np.testing.assert_allclose(solvers.min_norm_weights(tf.constant([[4.0]])), [1.0])
    _assert_on_simplex(solvers.min_norm_weights(tf.zeros([3, 3])).numpy())
    # The origin is in the hull: the weights cancel the gradients.
    grads = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], np.float32)
    weights = solvers.min_norm_weights(tf.constant(grads @ grads.T)).numpy()
    np.testing.assert_allclose(weights @ grads, [0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_fair_weights_diagonal_closed_form(alpha):
    norms = np.array([0.5, 2.0, 10.0])
    weights = solvers.alpha_fair_weights(tf.constant(np.diag(norms**2), tf.float32), alpha).numpy()
    # ||g_i||^2 w_i = w_i^(-1/alpha)  =>  w_i = ||g_i||^(-2 alpha / (1 + alpha)).
    np.testing.assert_allclose(weights, norms ** (-2 * alpha / (1 + alpha)), rtol=1e-4)


def test_alpha_fair_weights_solve_the_equation():
    rng = np.random.default_rng(3)
    for alpha in (0.5, 1.0, 3.0):
        grads = rng.normal(size=(4, 10))
        gram = grads @ grads.T
        weights = solvers.alpha_fair_weights(tf.constant(gram, tf.float32), alpha).numpy()
        assert (weights > 0).all()
        rhs = weights ** (-1.0 / alpha)
        np.testing.assert_allclose(gram @ weights, rhs, rtol=1e-3)
    np.testing.assert_allclose(solvers.alpha_fair_weights(tf.zeros([2, 2])), [1.0, 1.0])



def test_stateless_uniform_reproducible_and_varied():
    first = stateless_random.stateless_uniform([1000], 0, 0).numpy()
    assert ((first >= 0.0) & (first < 1.0)).all()
    assert abs(first.mean() - 0.5) < 0.05
    np.testing.assert_array_equal(first, stateless_random.stateless_uniform([1000], 0, 0).numpy())
    assert not np.array_equal(first, stateless_random.stateless_uniform([1000], 0, 1).numpy())
    assert not np.array_equal(first, stateless_random.stateless_uniform([1000], 1, 0).numpy())
    assert len(np.unique(first)) > 990
    counter = tf.Variable(tf.constant(5, tf.int64))
    np.testing.assert_array_equal(
        stateless_random.stateless_uniform([2, 3], 7, counter).numpy(),
        stateless_random.stateless_uniform([6], 7, 5).numpy().reshape(2, 3),
    )


def test_random_permutations_are_permutations():
    orders = stateless_random.random_permutations(6, 5, 0, 3).numpy()
    for row in orders:
        assert sorted(row) == list(range(5))
    assert len({tuple(row) for row in orders}) > 1
    draws = {tuple(stateless_random.random_permutations(1, 4, 0, calls).numpy()[0]) for calls in range(20)}
    assert len(draws) > 5


def test_solvers_under_xla_match_eager():
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(4, 6)).astype(np.float32)
    gram = tf.constant(grads @ grads.T)

    def run(gram, counter):
        return (
            solvers.min_norm_weights(gram),
            solvers.alpha_fair_weights(gram, 1.0),
            solvers.cagrad_weights(gram / tf.reduce_max(gram), tf.reduce_mean(gram, axis=1) / tf.reduce_max(gram),
                                   tf.constant(0.3)),
            stateless_random.stateless_uniform([7], 3, counter),
            stateless_random.random_permutations(4, 4, 3, counter),
        )

    counter = tf.constant(11, tf.int64)
    eager = run(gram, counter)
    compiled = tf.function(run, jit_compile=True)(gram, counter)
    for expected, actual in zip(eager, compiled):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
