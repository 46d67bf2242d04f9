"""Every task control with every weighting method, and disabled means disabled on every strategy."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import head_toy
import toy
from multitask import base_model
from multitask import configs
from multitask import base_trainer
from multitask import interleaving_trainer
from multitask import multitask
from multitask import task_sampler
from multitask import weighting
from multitask.core import runtime
from multitask.modeling import head_task
from multitask.training import update_guard
from multitask.weighting import base as weighting_base

HEADS = dict(head_toy.HEADS, tilt=dict(type="regression"))
# A loss-weight schedule and a learning-rate multiplier on "size" in every run.
SCHEDULE = configs.LossWeightScheduleConfig(type="piecewise", boundaries=(1,), values=(0.5, 2.0))


def _method_kwargs(name):
    """(rep_grad for the parameter-gradient run, whether the method can take rep_grad)."""
    cls = weighting.weighting_class(name)
    takes_rep = not cls.loss_level and weighting_base.REPRESENTATION in cls.gradient_kinds
    return weighting.needs_rep_grad(name), takes_rep and not list(weighting.get_weighting(name, 2).trainable_variables)


def _shared_data(nan_tilt=False):
    """The partial-label toy data (kind: -1 = no label, size: NaN = no label) plus a "tilt" target."""
    config = head_toy.PartialDataConfig(repeat=True, global_batch_size=8)

    def dataset_fn(input_context=None):
        def add_tilt(features, labels):
            tilt = tf.reduce_sum(features, axis=-1) * (np.nan if nan_tilt else 1.0)
            return features, dict(labels, tilt=tilt)

        return head_toy.partial_inputs(config, input_context).map(add_tilt)

    return dataset_fn


def _tasks(names, disabled=()):
    tasks = [head_task.HeadTask(head_task.HeadTaskConfig(name=n, head=head_task.HeadConfig(**HEADS[n])))
             for n in names]
    return multitask.MultiTask(
        tasks, disabled_tasks=disabled,
        loss_weight_schedules={"size": SCHEDULE} if "size" in names else None,
        learning_rate_multipliers={"size": 0.5} if "size" in names else None)


def _model(names):
    model = base_model.EncoderHeadsModel(
        head_toy.dense_encoder(4),
        {n: head_task.build_head(HEADS[n], name=f"{n}_head") for n in names})
    model.build()
    return model


def _trainer(names, method, rep_grad=False, disabled=(), nan_tilt=False, init=None, kind_optimizer=False):
    tasks = _tasks(names, disabled)
    model = _model(names)
    if init is not None:
        for key, variable in _named_variables(model).items():
            variable.assign(init[key])
    trainer = base_trainer.MultiTaskBaseTrainer(
        tasks, model, keras.optimizers.Adam(0.01), train_datasets=_shared_data(nan_tilt),
        weighting=weighting.get_weighting(method, len(names)), rep_grad=rep_grad,
        task_optimizers={"kind": keras.optimizers.SGD(0.05)} if kind_optimizer else None)
    return trainer, model


def _named_variables(model):
    """`{(encoder or task, i): variable}`: the same keys in models with different task sets."""
    parts = {"encoder": model.encoder, **model.heads}
    return {(part, i): v for part, layer in parts.items() for i, v in enumerate(layer.trainable_variables)}


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _head_and_slots(trainer, model, name):
    head = model.heads[name].trainable_variables
    return head + update_guard.optimizer_slots(trainer.optimizer, head, model.trainable_variables)


@pytest.mark.parametrize("method", weighting.known_weightings())
def test_every_method_balances_only_the_active_tasks(method):
    """Tilt off from the start, size off after two steps (as early stopping does), size with a
    loss-weight schedule and a learning-rate multiplier, kind with its own optimizer, partial
    labels, Adam: the run equals one with a two-task MultiTask that never had tilt, and tilt's
    head and slots never move."""
    rep_grad, _ = _method_kwargs(method)
    keras.utils.set_random_seed(0)
    trainer, model = _trainer(("kind", "size", "tilt"), method, rep_grad, disabled=("tilt",), kind_optimizer=True)
    init = {key: v.numpy() for key, v in _named_variables(model).items()}
    reference, reference_model = _trainer(("kind", "size"), method, rep_grad, init=init, kind_optimizer=True)
    tilt_before = _values(_head_and_slots(trainer, model, "tilt"))
    runs = []
    for candidate in (trainer, reference):
        first = candidate.train(tf.constant(2))
        size_before = _values(_head_and_slots(candidate, candidate.multi_task_model, "size"))
        candidate.multi_task.disable_task("size")
        second = candidate.train(tf.constant(2))
        size_after = _values(_head_and_slots(candidate, candidate.multi_task_model, "size"))
        for old, new in zip(size_before, size_after):
            np.testing.assert_array_equal(old, new)
        runs.append((first, second))
    for old, new in zip(tilt_before, _values(_head_and_slots(trainer, model, "tilt"))):
        np.testing.assert_array_equal(old, new)
    got = _named_variables(model)
    for key, variable in _named_variables(reference_model).items():
        np.testing.assert_allclose(got[key].numpy(), variable.numpy(), rtol=2e-5, atol=1e-6)
    (first, second), (ref_first, ref_second) = runs
    assert first["tilt"]["task_steps"] == 0 and first["tilt"]["weight"] == 0.0
    assert first["tilt"]["training_loss"] == 0.0
    assert second["size"]["task_steps"] == 2 and second["kind"]["task_steps"] == 4
    assert int(trainer.task_optimizer("kind").iterations.numpy()) == 4
    assert second["kind"]["learning_rate"] == pytest.approx(0.05)
    for name in ("kind", "size"):
        assert first[name]["weight"] == pytest.approx(ref_first[name]["weight"], rel=1e-5)
        assert first[name]["training_loss"] == pytest.approx(ref_first[name]["training_loss"], rel=1e-5)
    assert first["size"]["loss_weight"] == pytest.approx(2.0)
    assert second["kind"]["weight"] == pytest.approx(ref_second["kind"]["weight"], rel=1e-5)
    assert np.isfinite(second["total_loss"])


@pytest.mark.parametrize("method", weighting.known_weightings())
def test_every_method_under_mirrored_bfloat16_ignores_a_disabled_task_with_nan_data(method, two_cpu_strategy):
    """Two replicas, mixed_bfloat16, representation gradients where the method takes them:
    a disabled task whose labels are all NaN takes no forward pass, so the step stays finite
    (on_nonfinite="raise" would stop the run otherwise)."""
    _, takes_rep = _method_kwargs(method)
    keras.utils.set_random_seed(0)
    runtime.set_mixed_precision_policy("bfloat16")
    try:
        with two_cpu_strategy.scope():
            trainer, model = _trainer(("kind", "size", "tilt"), method, takes_rep, disabled=("tilt",), nan_tilt=True)
        tilt_before = _values(model.heads["tilt"].trainable_variables)
        logs = trainer.train(tf.constant(2))
    finally:
        runtime.set_mixed_precision_policy(None)
    assert all(np.all(np.isfinite(v.numpy())) for v in model.trainable_variables)
    for old, new in zip(tilt_before, _values(model.heads["tilt"].trainable_variables)):
        np.testing.assert_array_equal(old, new)
    assert logs["kind"]["task_steps"] == 2 and logs["tilt"]["task_steps"] == 0
    assert np.isfinite(logs["total_loss"])


class _CountingTask(toy.ToyTask):
    """A toy task that counts, at run time, the steps that computed its loss."""

    calls = {}

    def build_losses(self, labels, model_outputs, aux_losses=None):
        name = self.name
        count = tf.py_function(lambda: _CountingTask.calls.update({name: _CountingTask.calls.get(name, 0) + 1}) or 0,
                               [], tf.int32)
        with tf.control_dependencies([count]):
            return super().build_losses(labels, model_outputs, aux_losses)


def _strategy(kind, two_cpu_strategy):
    return {"default": tf.distribute.get_strategy(), "one_device": tf.distribute.OneDeviceStrategy("/cpu:0"),
            "mirrored": two_cpu_strategy}[kind]


@pytest.mark.parametrize("strategy_kind", ["default", "one_device", "mirrored"])
@pytest.mark.parametrize("trainer_kind", ["joint", "joint_mgda", "interleaving"])
def test_a_disabled_task_takes_no_forward_pass(strategy_kind, trainer_kind, two_cpu_strategy):
    """`build_losses` runs for bar on no step while bar is off, then on every step once it is on."""
    strategy = _strategy(strategy_kind, two_cpu_strategy)
    _CountingTask.calls = {}
    with strategy.scope():
        tasks = multitask.MultiTask([_CountingTask(toy.FooConfig()), _CountingTask(toy.BarConfig())],
                                    disabled_tasks=["bar"])
        model = toy.ToyMultiTaskModel()
        if trainer_kind == "interleaving":
            trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
                tasks, model, keras.optimizers.SGD(0.1), task_sampler.RoundRobinTaskSampler(tasks.sampling_weights))
        else:
            trainer = base_trainer.MultiTaskBaseTrainer(
                tasks, model, keras.optimizers.SGD(0.1),
                weighting=weighting.get_weighting("mgda", 2) if trainer_kind == "joint_mgda" else None)
    replicas = strategy.num_replicas_in_sync
    trainer.train(tf.constant(4))
    assert _CountingTask.calls.get("bar", 0) == 0
    assert _CountingTask.calls["foo"] == 4 * replicas
    tasks.enable_task("bar")
    trainer.train(tf.constant(4))
    expected_bar = 2 if trainer_kind == "interleaving" else 4
    assert _CountingTask.calls["bar"] == expected_bar * replicas


@pytest.mark.parametrize("trainer_kind", ["joint", "interleaving"])
def test_a_step_window_inside_a_loop_trains_exactly_its_steps(trainer_kind):
    """A window [3, 6) inside one loop of 8: bar trains exactly 3 steps, its head moves only then."""
    _CountingTask.calls = {}
    tasks = multitask.MultiTask([_CountingTask(toy.FooConfig()), _CountingTask(toy.BarConfig())],
                                active_steps={"bar": (3, 6)})
    model = toy.ToyMultiTaskModel()
    if trainer_kind == "interleaving":
        trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
            tasks, model, keras.optimizers.SGD(0.1), task_sampler.RoundRobinTaskSampler(tasks.sampling_weights))
    else:
        trainer = base_trainer.MultiTaskBaseTrainer(tasks, model, keras.optimizers.SGD(0.1))
    logs = trainer.train(tf.constant(8))
    assert logs["bar"]["task_steps"] == _CountingTask.calls["bar"]
    assert logs["bar"]["task_steps"] == 3 if trainer_kind == "joint" else 1 <= logs["bar"]["task_steps"] <= 3
    assert int(trainer.global_step.numpy()) == 8
