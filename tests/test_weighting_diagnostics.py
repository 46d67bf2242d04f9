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


def _replay(model, solve, steps, every):
    """Numpy's joint steps from the model's variables: the means of the summaries over `steps`."""
    kernel, bias = (v.numpy().astype(np.float64) for v in model.encoder.trainable_variables)
    heads = {name: [v.numpy().astype(np.float64) for v in model.heads[name].trainable_variables]
             for name in ("foo", "bar")}
    weights_seen, norms_seen, cosines_seen = [], [], []
    for step in range(steps):
        hidden = X @ kernel + bias
        shared_grads, head_grads = [], []
        for name in ("foo", "bar"):
            v, c = heads[name]
            d_out = 2.0 * (hidden @ v + c - TARGETS[name]) / len(X)  # d loss / d prediction
            d_hidden = d_out @ v.T
            shared_grads.append(np.concatenate([(X.T @ d_hidden).ravel(), d_hidden.sum(0)]))
            head_grads.append([hidden.T @ d_out, d_out.sum(0)])
        g1, g2 = shared_grads
        if step % every == 0:
            weights = solve(g1, g2)
            norms = np.array([np.linalg.norm(g1), np.linalg.norm(g2)])
            norms_seen.append(norms)
            cosines_seen.append(g1 @ g2 / norms.prod())
        weights_seen.append(weights)
        combined = weights[0] * g1 + weights[1] * g2
        kernel = kernel - LR * combined[:kernel.size].reshape(kernel.shape)
        bias = bias - LR * combined[kernel.size:]
        for name, grads in zip(("foo", "bar"), head_grads):
            heads[name] = [p - LR * g for p, g in zip(heads[name], grads)]
    return np.mean(weights_seen, axis=0), np.mean(norms_seen, axis=0), np.mean(cosines_seen), kernel


@pytest.mark.parametrize("method, solve, hyper", [
    ("mgda", _mgda_two, dict(normalization="none")),
    ("imtl", _imtl_two, {}),
    ("imtl", _imtl_two, dict(recompute_every=2)),
], ids=["mgda", "imtl", "imtl-recompute_every=2"])
def test_summaries_equal_a_hand_computation_on_a_closed_form_problem(method, solve, hyper):
    """Four steps: `weight` is the mean of the weights applied at every step;
    `grad_norm` (of each task's loss gradient with respect to the shared
    parameters) and `grad_cosine_<other>` are the means over the steps that
    computed gradients (every step, or every second with recompute_every=2)."""
    steps = 4
    trainer, model = _trainer(tf.distribute.get_strategy(), method, **hyper)
    weights, norms, cosine, kernel = _replay(model, solve, steps, hyper.get("recompute_every", 1))
    logs = trainer.train(tf.constant(steps))
    assert 0.05 < weights[0] < 0.95  # both tasks weigh: the test sees the weights
    for i, (name, other) in enumerate((("foo", "bar"), ("bar", "foo"))):
        assert float(logs[name]["weight"]) == pytest.approx(weights[i], rel=1e-4)
        assert float(logs[name]["grad_norm"]) == pytest.approx(norms[i], rel=1e-4)
        assert float(logs[name][f"grad_cosine_{other}"]) == pytest.approx(cosine, rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(model.encoder.trainable_variables[0].numpy(), kernel, rtol=1e-4, atol=1e-6)


def test_a_loss_level_method_summarises_its_weights_only():
    trainer, _ = _trainer(tf.distribute.get_strategy(), "static", weights=[2.0, 0.5])
    logs = trainer.train(tf.constant(2))
    assert float(logs["foo"]["weight"]) == 2.0 and float(logs["bar"]["weight"]) == 0.5
    assert not any(key.startswith("grad_") for key in logs["foo"])


GRADIENT_METHODS = [m for m in weighting.known_weightings() if not weighting.weighting_class(m).loss_level]


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_one_and_two_replicas_agree_for_three_tasks_over_twenty_steps(method, two_cpu_strategy):
    """The model, the method's state and every summary, for each gradient-level method."""
    tasks = ("foo", "bar", "baz")
    build = functools.partial(_trainer, method=method, task_names=tasks, rep_grad=weighting.needs_rep_grad(method))
    results = []
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        trainer, model = build(strategy)
        logs = trainer.train(tf.constant(20))
        state = [v.numpy() for v in trainer._weighting.variables]  # pylint: disable=protected-access
        results.append(([v.numpy() for v in model.trainable_variables], state, logs))
    (one_model, one_state, one_logs), (two_model, two_state, two_logs) = results
    for a, b in zip(one_model + one_state, two_model + two_state):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for name in tasks:
        keys = [key for key in one_logs[name] if key == "weight" or key.startswith("grad_")]
        assert len(keys) == 4  # weight, grad_norm and two cosines
        for key in keys:
            assert float(one_logs[name][key]) == pytest.approx(float(two_logs[name][key]), rel=1e-4, abs=1e-5), key
