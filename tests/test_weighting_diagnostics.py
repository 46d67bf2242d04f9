"""The weighting summaries (`weight`, `grad_norm`, `grad_cosine_<task>`) hold the right numbers.

A linear encoder `h = x W + b` and linear heads `y_t = h v_t + c_t` with a
mean squared error give each task's gradient with respect to the shared
parameters in closed form, so numpy can replay the joint trainer step by step.
"""
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model
from multitask import base_trainer
from multitask import multitask
from multitask import weighting

X, Y = toy.toy_arrays(7, n=8)
TARGETS = {"foo": Y, "bar": -0.5 * Y + 1.0, "baz": 2.0 * X[:, :1] - X[:, 1:]}
LR = 0.1


def _trainer(strategy, method, task_names=("foo", "bar"), rep_grad=False, **hyper):
    keras.utils.set_random_seed(0)
    labels = {name: TARGETS[name] for name in task_names}
    data = tf.data.Dataset.from_tensor_slices((X, labels)).repeat().batch(8, drop_remainder=True)
    with strategy.scope():
        tasks = multitask.MultiTask([toy.ToyTask(toy.FooConfig(name=name)) for name in task_names])
        encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        model = base_model.EncoderHeadsModel(encoder, {name: keras.layers.Dense(1) for name in task_names})
        model.build()
        trainer = base_trainer.MultiTaskBaseTrainer(
            tasks, model, keras.optimizers.SGD(LR), rep_grad=rep_grad, train_datasets=data,
            weighting=weighting.get_weighting(method, len(task_names), **hyper))
    return trainer, model


def _mgda_two(g1, g2):
    """The min-norm point of the segment [g1, g2]: (alpha, 1 - alpha)."""
    alpha = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0.0, 1.0)
    return np.array([alpha, 1.0 - alpha])


def _imtl_two(g1, g2):
    """(a, 1 - a) with g = a g1 + (1 - a) g2 projecting equally on g1 / |g1| and g2 / |g2|."""
    u1, u2 = g1 / np.linalg.norm(g1), g2 / np.linalg.norm(g2)
    # a <g1, u1 - u2> + (1 - a) <g2, u1 - u2> = 0.
    a = -(g2 @ (u1 - u2)) / ((g1 - g2) @ (u1 - u2))
    return np.array([a, 1.0 - a])


def _replay(model, solve, steps, every, rep_grad=False):
    """Numpy's joint steps from the model's variables: the means of the summaries over `steps`.

    The method sees each task's gradient with respect to the shared
    parameters, or with `rep_grad` with respect to the representation `h` of
    the global batch (each example's row of the mean loss's gradient).
    """
    kernel, bias = (v.numpy().astype(np.float64) for v in model.encoder.trainable_variables)
    heads = {name: [v.numpy().astype(np.float64) for v in model.heads[name].trainable_variables]
             for name in ("foo", "bar")}
    weights_seen, norms_seen, cosines_seen = [], [], []
    for step in range(steps):
        hidden = X @ kernel + bias
        shared_grads, rep_grads, head_grads = [], [], []
        for name in ("foo", "bar"):
            v, c = heads[name]
            d_out = 2.0 * (hidden @ v + c - TARGETS[name]) / len(X)  # d loss / d prediction
            d_hidden = d_out @ v.T
            shared_grads.append(np.concatenate([(X.T @ d_hidden).ravel(), d_hidden.sum(0)]))
            rep_grads.append(d_hidden.ravel())
            head_grads.append([hidden.T @ d_out, d_out.sum(0)])
        g1, g2 = rep_grads if rep_grad else shared_grads
        if step % every == 0:
            weights = solve(g1, g2)
            norms = np.array([np.linalg.norm(g1), np.linalg.norm(g2)])
            norms_seen.append(norms)
            cosines_seen.append(g1 @ g2 / norms.prod())
        weights_seen.append(weights)
        # Linear in the representation: the weights' sum of representation
        # gradients back-propagates to the weights' sum of parameter gradients.
        combined = weights[0] * shared_grads[0] + weights[1] * shared_grads[1]
        kernel = kernel - LR * combined[:kernel.size].reshape(kernel.shape)
        bias = bias - LR * combined[kernel.size:]
        for name, grads in zip(("foo", "bar"), head_grads):
            heads[name] = [p - LR * g for p, g in zip(heads[name], grads)]
    return np.mean(weights_seen, axis=0), np.mean(norms_seen, axis=0), np.mean(cosines_seen), kernel


CLOSED_FORM_CASES = [
    ("mgda", _mgda_two, dict(normalization="none")),
    ("imtl", _imtl_two, {}),
    ("imtl", _imtl_two, dict(recompute_every=2)),
    ("mgda", _mgda_two, dict(normalization="none", rep_grad=True)),
    ("mgda", _mgda_two, dict(normalization="none", rep_grad=True, recompute_every=2)),
]
CLOSED_FORM_IDS = ["mgda", "imtl", "imtl-recompute_every=2", "mgda-rep_grad", "mgda-rep_grad-recompute_every=2"]


def _check_closed_form(strategy, method, solve, hyper):
    steps = 4
    hyper = dict(hyper)
    rep_grad = hyper.pop("rep_grad", False)
    trainer, model = _trainer(strategy, method, rep_grad=rep_grad, **hyper)
    weights, norms, cosine, kernel = _replay(model, solve, steps, hyper.get("recompute_every", 1), rep_grad)
    logs = trainer.train(tf.constant(steps))
    assert 0.05 < weights[0] < 0.95  # both tasks weigh: the test sees the weights
    for i, (name, other) in enumerate((("foo", "bar"), ("bar", "foo"))):
        assert float(logs[name]["weight"]) == pytest.approx(weights[i], rel=1e-4)
        assert float(logs[name]["grad_norm"]) == pytest.approx(norms[i], rel=1e-4)
        assert float(logs[name][f"grad_cosine_{other}"]) == pytest.approx(cosine, rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(model.encoder.trainable_variables[0].numpy(), kernel, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method, solve, hyper", CLOSED_FORM_CASES, ids=CLOSED_FORM_IDS)
def test_summaries_equal_a_hand_computation_on_a_closed_form_problem(method, solve, hyper):
    """Four steps: `weight` is the mean of the weights applied at every step;
    `grad_norm` (of each task's loss gradient with respect to the shared
    parameters, or with rep_grad to the representation of the global batch)
    and `grad_cosine_<other>` are the means over the steps that computed
    gradients (every step, or every second with recompute_every=2)."""
    _check_closed_form(tf.distribute.get_strategy(), method, solve, hyper)


@pytest.mark.parametrize("method, solve, hyper", CLOSED_FORM_CASES, ids=CLOSED_FORM_IDS)
def test_summaries_on_two_replicas_equal_the_same_hand_computation(method, solve, hyper, two_cpu_strategy):
    """The global batch split over two replicas: the same numbers (of the global batch's gradients)."""
    _check_closed_form(two_cpu_strategy, method, solve, hyper)


@pytest.mark.parametrize("method, hyper, expected", [
    ("static", dict(weights=[2.0, 0.5]), (2.0, 0.5)),
    ("ew", {}, (1.0, 1.0)),
])
def test_a_loss_level_method_summarises_its_weights_only(method, hyper, expected):
    trainer, _ = _trainer(tf.distribute.get_strategy(), method, **hyper)
    logs = trainer.train(tf.constant(2))
    assert (float(logs["foo"]["weight"]), float(logs["bar"]["weight"])) == expected
    assert not any(key.startswith("grad_") for key in logs["foo"])


GRADIENT_METHODS = [m for m in weighting.known_weightings() if not weighting.weighting_class(m).loss_level]


REPLICA_CASES = [(method, {}) for method in GRADIENT_METHODS] + [
    ("mgda", dict(recompute_every=2)), ("imtl", dict(recompute_every=3))]


@pytest.mark.parametrize("method, hyper", REPLICA_CASES,
                         ids=[m + "".join(f"-{k}={v}" for k, v in h.items()) for m, h in REPLICA_CASES])
def test_one_and_two_replicas_agree_for_three_tasks_over_twenty_steps(method, hyper, two_cpu_strategy):
    """The model, the method's state and every summary, for each gradient-level method."""
    tasks = ("foo", "bar", "baz")
    build = functools.partial(_trainer, method=method, task_names=tasks, rep_grad=weighting.needs_rep_grad(method),
                              **hyper)
    results = []
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        trainer, model = build(strategy)
        logs = trainer.train(tf.constant(20))
        state = [v.numpy() for v in trainer._weighting.variables]  # pylint: disable=protected-access
        results.append(([v.numpy() for v in model.trainable_variables], state, logs))
    (one_model, one_state, one_logs), (two_model, two_state, two_logs) = results
    assert len(one_state) == len(two_state)
    for a, b in zip(one_model + one_state, two_model + two_state):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for name in tasks:
        keys = [key for key in one_logs[name] if key == "weight" or key.startswith("grad_")]
        assert len(keys) == 4  # weight, grad_norm and two cosines
        for key in keys:
            assert float(one_logs[name][key]) == pytest.approx(float(two_logs[name][key]), rel=1e-4, abs=1e-5), key
