"""Tests for the balanced joint step: every weighting trains, and replicas agree."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model
from multitask import base_trainer
from multitask.training import gradients
from multitask import multitask
from multitask import weighting
from multitask.weighting import base as weighting_base

X, Y = toy.toy_arrays(5)


def _shared_data(batch=8):
    dataset = tf.data.Dataset.from_tensor_slices((X, {"foo": Y, "bar": -0.5 * Y + 1.0}))
    return dataset.repeat().batch(batch, drop_remainder=True)


def _model():
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="tanh")])
    return base_model.EncoderHeadsModel(encoder, {"foo": keras.layers.Dense(1), "bar": keras.layers.Dense(1)})


def _run(strategy, method=None, rep_grad=False, steps=3, init=None, shared=True, lr=0.05, **hyper):
    """Trains `steps` joint steps; returns (variables before, after, logs, trainer)."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        tasks = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
        model = _model()
        model.build()
        balancer = weighting.get_weighting(method, 2, **hyper) if method else None
        trainer = base_trainer.MultiTaskBaseTrainer(
            tasks, model, keras.optimizers.SGD(lr), weighting=balancer, rep_grad=rep_grad,
            train_datasets=_shared_data() if shared else None,
        )
    if init is not None:
        for variable, value in zip(model.trainable_variables, init):
            variable.assign(value)
    before = [v.numpy().copy() for v in model.trainable_variables]
    logs = trainer.train(tf.constant(steps))
    return before, [v.numpy() for v in model.trainable_variables], logs, trainer


def test_ew_paths_equal_the_plain_joint_step(two_cpu_strategy):
    """EW as one backward pass, as aggregated representation gradients, and
    the plain sum of losses make the same update, on one and two replicas."""
    init, plain, _, _ = _run(tf.distribute.get_strategy())
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        for rep_grad in (False, True):
            _, after, logs, _ = _run(strategy, "ew", rep_grad=rep_grad, init=init)
            for a, b in zip(plain, after):
                np.testing.assert_allclose(a, b, atol=1e-6)
            assert logs["foo"]["weight"] == pytest.approx(1.0)
            assert ("grad_norm" in logs["foo"]) == rep_grad


def test_static_weights_scale_the_task_gradients():
    """Static weights (2, 0): the update equals the plain step on foo's loss doubled."""
    init, after, _, _ = _run(tf.distribute.get_strategy(), "static", steps=1, weights=[2.0, 0.0])
    keras.utils.set_random_seed(0)
    model = _model()
    model.build()
    for variable, value in zip(model.trainable_variables, init):
        variable.assign(value)
    with tf.GradientTape() as tape:
        loss = 2.0 * tf.reduce_mean(tf.square(Y[:8] - model.sub_tasks["foo"](X[:8])))
    grads = tape.gradient(loss, model.trainable_variables)
    for variable, grad, got in zip(model.trainable_variables, grads, after):
        want = variable.numpy() - 0.05 * (0 if grad is None else grad.numpy())
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("method", weighting.known_weightings())
def test_every_method_trains(method):
    rep_grad = weighting.needs_rep_grad(method)
    _, _, first, trainer = _run(tf.distribute.get_strategy(), method, rep_grad=rep_grad, steps=5)
    for _ in range(3):
        last = trainer.train(tf.constant(10))
    for name in ("foo", "bar"):
        assert np.isfinite(last[name]["training_loss"])
        assert np.isfinite(last[name]["weight"])
    def task_loss_sum(logs):
        return logs["foo"]["training_loss"] + logs["bar"]["training_loss"]

    assert task_loss_sum(last) < task_loss_sum(first)
    if not weighting.weighting_class(method).loss_level or rep_grad:
        assert -1.0 - 1e-5 <= last["foo"]["grad_cosine_bar"] <= 1.0 + 1e-5
        assert last["foo"]["grad_cosine_bar"] == pytest.approx(last["bar"]["grad_cosine_foo"])
        assert last["foo"]["grad_norm"] > 0


@pytest.mark.parametrize("method", ["dwa", "gls", "uw"])
def test_loss_methods_same_update_on_one_and_two_replicas(method, two_cpu_strategy):
    init, one, _, _ = _run(tf.distribute.get_strategy(), method, steps=3)
    _, two, _, _ = _run(two_cpu_strategy, method, steps=3, init=init)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_weighting_state_is_checkpointed(tmp_path):
    _, _, _, trainer = _run(tf.distribute.get_strategy(), "dwa", steps=4)
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    saved = [v.numpy().copy() for v in trainer._weighting.variables]  # pylint: disable=protected-access
    _, _, _, fresh = _run(tf.distribute.get_strategy(), "dwa", steps=0)
    fresh.checkpoint.read(path).assert_existing_objects_matched()
    for a, b in zip(saved, fresh._weighting.variables):  # pylint: disable=protected-access
        np.testing.assert_array_equal(a, b.numpy())
    assert any("weighting/" in name for name, _ in tf.train.list_variables(path))


def test_uw_log_variances_train_with_the_model():
    _, _, _, trainer = _run(tf.distribute.get_strategy(), "uw", steps=20)
    log_variances = trainer._weighting.trainable_variables[0].numpy()  # pylint: disable=protected-access
    assert not np.allclose(log_variances, 0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="ew", rep_grad=True, shared=False), "one shared dataset"),
        (dict(method=None, rep_grad=True), "needs a trainer.weighting"),
        (dict(method="uw", rep_grad=True), "learns its weights from the loss"),
    ],
)
def test_invalid_combinations_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _run(tf.distribute.get_strategy(), steps=0, **kwargs)


def test_parameter_only_and_representation_only_methods_are_refused():
    kinds = {m: weighting.weighting_class(m).gradient_kinds for m in weighting.known_weightings()}
    for method, accepted in kinds.items():
        if weighting.weighting_class(method).loss_level:
            continue
        for rep_grad, kind in ((False, weighting_base.PARAMETER), (True, weighting_base.REPRESENTATION)):
            if kind not in accepted:
                with pytest.raises(ValueError, match=f"not {kind} gradients"):
                    _run(tf.distribute.get_strategy(), method, rep_grad=rep_grad, steps=0)


def test_loss_weights_scale_each_loss_before_the_method(two_cpu_strategy):
    """A loss weight multiplies its task's loss before the method: EW (one backward pass,
    or balancing representation gradients) then makes the plain weighted step."""

    def weighted_run(strategy, method=None, rep_grad=False):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            tasks = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())],
                                        task_weights={"bar": 3.0})
            model = _model()
            model.build()
            trainer = base_trainer.MultiTaskBaseTrainer(
                tasks, model, keras.optimizers.SGD(0.05), train_datasets=_shared_data(), rep_grad=rep_grad,
                weighting=weighting.get_weighting(method, 2) if method else None)
        logs = trainer.train(tf.constant(3))
        return [v.numpy() for v in model.trainable_variables], logs

    plain, plain_logs = weighted_run(tf.distribute.get_strategy())
    _, unweighted, _, _ = _run(tf.distribute.get_strategy())
    assert not np.allclose(plain[0], unweighted[0])
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        for rep_grad in (False, True):
            after, logs = weighted_run(strategy, "ew", rep_grad)
            for a, b in zip(plain, after):
                np.testing.assert_allclose(a, b, atol=1e-6)
            assert logs["bar"]["loss_weight"] == pytest.approx(3.0)
            assert logs["bar"]["training_loss"] == pytest.approx(plain_logs["bar"]["training_loss"], rel=1e-5)


def test_split_variables_finds_shared_and_task_variables():
    model = _model()
    model.build()
    shared, specific = gradients.split_variables(model, ["foo", "bar"])
    assert {id(v) for v in shared} == {id(v) for v in model.encoder.trainable_variables}
    assert {id(v) for v in specific["bar"]} == {id(v) for v in model.heads["bar"].trainable_variables}
    single = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    everything, none = gradients.split_variables(single, ["foo"])
    assert len(everything) == 2 and none == {"foo": []}


def test_gradient_diagnostics_closed_form():
    norms, cosines = gradients.gradient_diagnostics(tf.constant([[3.0, 4.0], [0.0, -2.0]]))
    np.testing.assert_allclose(norms, [5.0, 2.0])
    np.testing.assert_allclose(cosines, [[1.0, -0.8], [-0.8, 1.0]], atol=1e-6)
