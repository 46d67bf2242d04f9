"""Tests for multitask.weighting.imtl."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model
from multitask import base_trainer
from multitask import multitask
from multitask import weighting


def _libmtl_formula(grads):
    """IMTL-G as LibMTL writes it, in the gradient space, in float64."""
    grads = grads.astype(np.float64)
    unit = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    d = grads[0:1] - grads[1:]
    u = unit[0:1] - unit[1:]
    rest = grads[0] @ u.T @ np.linalg.inv(d @ u.T)
    return np.concatenate([[1.0 - rest.sum()], rest])


def test_registered_with_loss_balance_and_recompute():
    method = weighting.get_weighting("imtl", 3)
    assert weighting.hyperparameters("imtl") == ["loss_balance", "recompute_every"]
    assert not method.trainable_variables
    assert set(method.gradient_kinds) == {"parameter", "representation"}
    assert method.linear


def test_hand_computed_two_tasks():
    grads = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    combined, weights = weighting.get_weighting("imtl", 2).aggregate(tf.ones([2]), grads)
    # alpha1 + alpha2 = 1 and alpha1 * 1 = alpha2 * 2.
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(combined, [2 / 3, 2 / 3], rtol=1e-6)


def test_equal_projections_on_unit_gradients():
    rng = np.random.default_rng(0)
    grads = (rng.normal(size=(4, 10)) * np.array([[0.1], [1.0], [5.0], [2.0]])).astype(np.float32)
    combined, weights = weighting.get_weighting("imtl", 4).aggregate(tf.ones([4]), grads)
    unit = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    projections = unit @ combined.numpy()
    np.testing.assert_allclose(projections, np.full(4, projections.mean()), rtol=1e-4)
    np.testing.assert_allclose(np.sum(weights), 1.0, rtol=1e-5)
    np.testing.assert_allclose(weights, _libmtl_formula(grads), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(combined, weights.numpy() @ grads, rtol=1e-5, atol=1e-5)


def test_parallel_gradients_stay_finite():
    grads = tf.constant([[1.0, 2.0], [2.0, 4.0]])
    combined, weights = weighting.get_weighting("imtl", 2).aggregate(tf.ones([2]), grads)
    np.testing.assert_allclose(weights, [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(combined, [1.0, 2.0], rtol=1e-6)


def test_single_task_is_identity():
    combined, weights = weighting.get_weighting("imtl", 1).aggregate(tf.ones([1]), tf.constant([[3.0, -1.0]]))
    np.testing.assert_allclose(weights, [1.0])
    np.testing.assert_allclose(combined, [3.0, -1.0])


def test_aggregate_under_xla_matches_eager():
    rng = np.random.default_rng(1)
    grads = tf.constant(rng.normal(size=(3, 7)), tf.float32)
    expected_combined, expected_weights = weighting.get_weighting("imtl", 3).aggregate(tf.ones([3]), grads)
    compiled = tf.function(weighting.get_weighting("imtl", 3).aggregate, jit_compile=True)
    combined, weights = compiled(tf.ones([3]), grads)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(combined, expected_combined, rtol=1e-4, atol=1e-6)


def test_loss_balance_scales_the_losses_and_refuses_a_non_bool():
    method = weighting.get_weighting("imtl", 3, loss_balance=True)
    method.loss_scales.assign([0.5, -1.0, 2.0])
    losses = tf.constant([2.0, 3.0, 0.25])
    # The losses of tasks 0 and 2 take those tasks' scales.
    np.testing.assert_allclose(method.transform_losses(losses[:2], [0, 2]),
                               [np.exp(0.5) * 2.0 - 0.5, np.exp(2.0) * 3.0 - 2.0], rtol=1e-6)
    np.testing.assert_allclose(weighting.get_weighting("imtl", 3).transform_losses(losses), losses)
    with pytest.raises(ValueError, match="weighting.loss_balance must be true or false, got 'yes'"):
        weighting.get_weighting("imtl", 3, loss_balance="yes")


def test_loss_scales_trained_by_an_optimizer_reach_the_closed_form_fixed_point():
    """d/ds (exp(s) L - s) = exp(s) L - 1 = 0 at s = -log L: every scaled loss becomes 1."""
    method = weighting.get_weighting("imtl", 3, loss_balance=True)
    losses = tf.constant([0.2, 1.0, 5.0])
    optimizer = keras.optimizers.SGD(0.1)
    for _ in range(300):
        with tf.GradientTape() as tape:
            objective = tf.reduce_sum(method.transform_losses(losses))
        optimizer.apply_gradients(zip(tape.gradient(objective, method.trainable_variables),
                                      method.trainable_variables))
    np.testing.assert_allclose(method.loss_scales.numpy(), -np.log(losses.numpy()), atol=1e-4)


X, Y = toy.toy_arrays(5)
LR = 0.1


def _trainer(strategy, loss_balance=True, rep_grad=False, recompute_every=1):
    keras.utils.set_random_seed(0)
    # Targets of different scales: the tasks' losses differ by about 16x.
    dataset = tf.data.Dataset.from_tensor_slices((X, {"foo": Y, "bar": 0.25 * Y + 1.0}))
    with strategy.scope():
        tasks = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
        encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="tanh")])
        model = base_model.EncoderHeadsModel(encoder, {"foo": keras.layers.Dense(1), "bar": keras.layers.Dense(1)})
        model.build()
        method = weighting.get_weighting("imtl", 2, loss_balance=loss_balance, recompute_every=recompute_every)
        trainer = base_trainer.MultiTaskBaseTrainer(
            tasks, model, keras.optimizers.SGD(LR), rep_grad=rep_grad, weighting=method,
            train_datasets=dataset.repeat().batch(8, drop_remainder=True))
    return trainer, model, method


def test_a_joint_step_trains_the_scales_and_balances_the_scaled_gradients():
    """Step 1 (s = 0) moves s by -lr (L - 1), with L the step's losses; step 2
    updates the model as IMTL-G does with the tasks' losses weighted by exp(s)
    (the -s term has no gradient in the model)."""
    trainer, model, method = _trainer(tf.distribute.get_strategy())
    logs = trainer.train(tf.constant(1))
    first_losses = np.array([float(logs[name]["training_loss"]) for name in ("foo", "bar")])
    np.testing.assert_allclose(method.loss_scales.numpy(), -LR * (first_losses - 1.0), rtol=1e-5)
    scales = method.loss_scales.numpy().copy()
    trainer.train(tf.constant(1))

    reference, reference_model, _ = _trainer(tf.distribute.get_strategy(), loss_balance=False)
    reference.train(tf.constant(1))
    for name, scale in zip(("foo", "bar"), scales):
        reference.multi_task.control.set_loss_weight(name, float(np.exp(scale)))
    reference.train(tf.constant(1))
    for a, b in zip(model.trainable_variables, reference_model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(scales, method.loss_scales.numpy())


@pytest.mark.parametrize("rep_grad, recompute_every", [(False, 1), (True, 1), (False, 2)])
def test_one_and_two_replicas_train_the_scales_alike_and_checkpoint_them(two_cpu_strategy, rep_grad,
                                                                         recompute_every, tmp_path):
    results = []
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        trainer, model, method = _trainer(strategy, rep_grad=rep_grad, recompute_every=recompute_every)
        trainer.train(tf.constant(5))
        results.append((method.loss_scales.numpy(), [v.numpy() for v in model.trainable_variables]))
    (one_scales, one_model), (two_scales, two_model) = results
    assert np.all(np.abs(one_scales) > 0.05)
    np.testing.assert_allclose(one_scales, two_scales, rtol=1e-5, atol=1e-6)
    for a, b in zip(one_model, two_model):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    restored, _, restored_method = _trainer(tf.distribute.get_strategy(), rep_grad=rep_grad,
                                            recompute_every=recompute_every)
    restored.checkpoint.restore(path)
    np.testing.assert_array_equal(restored_method.loss_scales.numpy(), two_scales)


REPLAY_TARGETS = {"foo": Y, "bar": 0.25 * Y}


def _linear_trainer(loss_balance, recompute_every):
    """A linear encoder `h = x W + b` and linear heads: each task's gradients have a closed form."""
    keras.utils.set_random_seed(0)
    dataset = tf.data.Dataset.from_tensor_slices((X, REPLAY_TARGETS))
    tasks = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    model = base_model.EncoderHeadsModel(encoder, {"foo": keras.layers.Dense(1), "bar": keras.layers.Dense(1)})
    model.build()
    method = weighting.get_weighting("imtl", 2, loss_balance=loss_balance, recompute_every=recompute_every)
    trainer = base_trainer.MultiTaskBaseTrainer(tasks, model, keras.optimizers.SGD(LR), weighting=method,
                                                train_datasets=dataset.repeat().batch(8, drop_remainder=True))
    return trainer, model, method


def _replay(model, steps, every, loss_balance):
    """Numpy's joint steps: IMTL-G on the gradients `exp(s_i) g_i` of the scaled losses,
    heads by `exp(s_i)` times their task's gradient, and `s <- s - lr (exp(s) L - 1)` at
    every step (also where the weights are reused)."""
    kernel, bias = (v.numpy().astype(np.float64) for v in model.encoder.trainable_variables)
    heads = {name: [v.numpy().astype(np.float64) for v in model.heads[name].trainable_variables]
             for name in ("foo", "bar")}
    scales = np.zeros(2)
    for step in range(steps):
        batch = slice(8 * step, 8 * step + 8)
        x = X[batch].astype(np.float64)
        hidden = x @ kernel + bias
        losses, shared_grads, head_grads = [], [], []
        for name in ("foo", "bar"):
            v, c = heads[name]
            error = hidden @ v + c - REPLAY_TARGETS[name][batch]
            losses.append(np.mean(error ** 2))
            d_out = 2.0 * error / len(x)
            d_hidden = d_out @ v.T
            shared_grads.append(np.concatenate([(x.T @ d_hidden).ravel(), d_hidden.sum(0)]))
            head_grads.append([hidden.T @ d_out, d_out.sum(0)])
        factors = np.exp(scales) if loss_balance else np.ones(2)
        scaled = factors[:, None] * np.stack(shared_grads)
        if step % every == 0:
            weights = _libmtl_formula(scaled)
        combined = weights @ scaled
        kernel = kernel - LR * combined[:kernel.size].reshape(kernel.shape)
        bias = bias - LR * combined[kernel.size:]
        for i, name in enumerate(("foo", "bar")):
            heads[name] = [p - LR * factors[i] * g for p, g in zip(heads[name], head_grads[i])]
        if loss_balance:
            scales = scales - LR * (np.exp(scales) * np.array(losses) - 1.0)
    return [kernel, bias, *heads["foo"], *heads["bar"]], scales


@pytest.mark.parametrize("loss_balance, recompute_every", [(True, 1), (True, 2), (False, 1)],
                         ids=["loss_balance", "loss_balance-recompute_every=2", "default"])
def test_joint_steps_equal_a_hand_computation(loss_balance, recompute_every):
    """Three steps of the real joint trainer against numpy; without
    loss_balance the method is IMTL-G alone (no trainable variable, losses as given)."""
    trainer, model, method = _linear_trainer(loss_balance, recompute_every)
    expected_variables, expected_scales = _replay(model, 3, recompute_every, loss_balance)
    trainer.train(tf.constant(3))
    if loss_balance:
        assert np.all(np.abs(expected_scales) > 0.05)  # the scales differ from 0 and from each other
        np.testing.assert_allclose(method.loss_scales.numpy(), expected_scales, rtol=1e-4, atol=1e-6)
    else:
        assert not method.trainable_variables
    actual = [model.encoder.trainable_variables[0], model.encoder.trainable_variables[1],
              *model.heads["foo"].trainable_variables, *model.heads["bar"].trainable_variables]
    for a, b in zip(actual, expected_variables):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-4, atol=1e-6)


def test_loss_balance_from_the_command_line():
    from multitask import configs
    from multitask import train

    params = configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(task_routines=(configs.TaskRoutine(task_config=toy.FooConfig()),
                                                    configs.TaskRoutine(task_config=toy.BarConfig()))),
        trainer=configs.MultiTaskTrainerConfig(trainer_type="joint"))
    train.apply_override(params, "trainer.weighting.type=imtl,trainer.weighting.loss_balance=true,"
                                 "trainer.weighting.recompute_every=2", "--params_override")
    params.trainer.validate()
    hyper = params.trainer.weighting.hyperparameters()
    assert hyper == {"loss_balance": True, "recompute_every": 2}
    method = weighting.get_weighting("imtl", 2, **hyper)
    assert method.trainable_variables == (method.loss_scales,)
