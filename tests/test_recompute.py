"""`recompute_every`: the joint trainer's steps that reuse a method's weights take no per-task gradient."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model
from multitask import base_trainer
from multitask import multitask
from multitask import weighting
from multitask.weighting import base as weighting_base

X, Y = toy.toy_arrays(5)
STEPS, EVERY = 7, 3  # Weights computed at steps 0, 3 and 6.


def _trainer(strategy, method, rep_grad):
    keras.utils.set_random_seed(0)
    dataset = tf.data.Dataset.from_tensor_slices((X, {"foo": Y, "bar": -0.5 * Y + 1.0}))
    with strategy.scope():
        tasks = multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
        encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="tanh")])
        model = base_model.EncoderHeadsModel(encoder, {"foo": keras.layers.Dense(1), "bar": keras.layers.Dense(1)})
        model.build()
        trainer = base_trainer.MultiTaskBaseTrainer(
            tasks, model, keras.optimizers.SGD(0.05), rep_grad=rep_grad,
            weighting=weighting.get_weighting(method, 2, recompute_every=EVERY),
            train_datasets=dataset.repeat().batch(8, drop_remainder=True))
    return trainer, model


@pytest.mark.parametrize("method, rep_grad", [("mgda", False), ("imtl", True)])
def test_reused_weights_update_as_the_gradient_path_without_per_task_gradients(method, rep_grad, two_cpu_strategy,
                                                                              monkeypatch):
    """7 steps, new weights every 3, in one traced loop: steps 1-2 and 4-5
    take one backward pass of the weighted loss sum (no per-task gradients:
    `aggregate` runs 3 times), and the run ends as the gradient path reusing
    the weights inside `aggregate` does, on one and two replicas. Its
    gradient diagnostics are the means over the 3 steps that computed
    per-task gradients."""
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        trainer, model = _trainer(strategy, method, rep_grad)
        logs = trainer.train(tf.constant(STEPS))
        got = [v.numpy() for v in model.trainable_variables]
        assert int(trainer.global_step.numpy()) == STEPS
        assert len(trainer._train_loop_fns) == 1  # pylint: disable=protected-access

        with monkeypatch.context() as patch:  # Every step through per-task gradients.
            patch.setattr(base_trainer.MultiTaskBaseTrainer, "_reuses_weights", lambda self: False)
            reference, reference_model = _trainer(strategy, method, rep_grad)
            per_step = [reference.train(tf.constant(1)) for _ in range(STEPS)]
        for a, b in zip(got, reference_model.trainable_variables):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
        computed = [per_step[i]["foo"] for i in range(0, STEPS, EVERY)]
        assert float(logs["foo"]["grad_norm"]) == pytest.approx(np.mean([float(c["grad_norm"]) for c in computed]),
                                                                rel=1e-5)
        assert float(logs["foo"]["grad_cosine_bar"]) == pytest.approx(
            np.mean([float(c["grad_cosine_bar"]) for c in computed]), rel=1e-5, abs=1e-6)
        assert float(logs["foo"]["weight"]) == pytest.approx(np.mean([float(s["foo"]["weight"]) for s in per_step]),
                                                             rel=1e-5)


def test_steps_that_reuse_the_weights_skip_aggregate(monkeypatch):
    """`aggregate` (per-task gradients and their balance) runs only at the 3
    steps that compute weights; with the gradient path reusing weights inside
    it, at all 7."""
    for skip, expected in ((True, 3), (False, STEPS)):
        calls = tf.Variable(0)
        aggregate = weighting_base.Weighting.aggregate

        def counting(self, *args, **kwargs):
            calls.assign_add(1)
            return aggregate(self, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(weighting_base.Weighting, "aggregate", counting)
            if not skip:
                patch.setattr(base_trainer.MultiTaskBaseTrainer, "_reuses_weights", lambda self: False)
            trainer, _ = _trainer(tf.distribute.get_strategy(), "mgda", False)
            trainer.train(tf.constant(STEPS))
        assert int(calls.numpy()) == expected


def test_a_resumed_run_recomputes_where_the_uninterrupted_one_does(tmp_path):
    """Restored after 4 steps (mid-way between recomputations), 3 more steps
    end as 7 uninterrupted ones: `calls` and `last_tasks` are checkpointed."""
    whole, whole_model = _trainer(tf.distribute.get_strategy(), "mgda", False)
    whole.train(tf.constant(STEPS))
    first, _ = _trainer(tf.distribute.get_strategy(), "mgda", False)
    first.train(tf.constant(4))
    path = first.checkpoint.save(str(tmp_path / "ckpt"))
    resumed, resumed_model = _trainer(tf.distribute.get_strategy(), "mgda", False)
    resumed.checkpoint.restore(path).assert_consumed()
    resumed.train(tf.constant(STEPS - 4))
    for a, b in zip(whole_model.trainable_variables, resumed_model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_change_of_the_training_tasks_recomputes_on_one_and_two_replicas(two_cpu_strategy, monkeypatch):
    """Task control between loops: "bar" off after 2 steps, on again after 4.
    Each change forces new weights: `aggregate` runs at steps 0 and 3 (every
    3 calls) and 2 and 4 (the task set changed); 1 and 5 reuse. "bar"'s head
    stays still while it is off, and one and two replicas end alike."""
    calls = tf.Variable(0)
    aggregate = weighting_base.Weighting.aggregate

    def counting(self, *args, **kwargs):
        calls.assign_add(1)
        return aggregate(self, *args, **kwargs)

    results = []
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        with monkeypatch.context() as patch:
            if strategy is not two_cpu_strategy:  # A plain variable counts one replica's calls.
                patch.setattr(weighting_base.Weighting, "aggregate", counting)
            trainer, model = _trainer(strategy, "mgda", False)
            control = trainer._multi_task.control  # pylint: disable=protected-access
            trainer.train(tf.constant(2))
            control.disable("bar")
            bar_head = [v.numpy().copy() for v in model.heads["bar"].trainable_variables]
            logs = trainer.train(tf.constant(2))
            assert logs["foo"]["weight"] == pytest.approx(1.0)  # Alone, foo takes all the weight.
            for before, after in zip(bar_head, model.heads["bar"].trainable_variables):
                np.testing.assert_array_equal(before, after.numpy())
            control.enable("bar")
            trainer.train(tf.constant(2))
        results.append([v.numpy() for v in model.trainable_variables])
    assert int(calls.numpy()) == 4
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
