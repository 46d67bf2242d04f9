"""Tests for runtime task control and the per-task knobs (multitask.task_control)."""
import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_trainer
from multitask import configs
from multitask import interleaving_trainer
from multitask import multitask
from multitask import task_control
from multitask import task_sampler
from multitask.core import runtime
from multitask.training import update_guard


def _multi_task(**kwargs):
    return multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())], **kwargs)


def _joint(strategy=None, optimizer=None, seed=0, **kwargs):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        mt = _multi_task(**kwargs)
        model = toy.ToyMultiTaskModel()
        trainer = base_trainer.MultiTaskBaseTrainer(mt, model, optimizer or keras.optimizers.Adam(0.05))
    return trainer, model


def _interleaving(strategy=None, seed=0, sampler=task_sampler.UniformTaskSampler, **kwargs):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        mt = _multi_task(**kwargs)
        model = toy.ToyMultiTaskModel()
        trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
            mt, model, keras.optimizers.Adam(0.05), sampler(mt.sampling_weights)
        )
    return trainer, model


def _values(variables):
    return [np.array(v.numpy()) for v in variables]


def _head_and_slots(trainer, model, name):
    head = model.sub_tasks[name].head.trainable_variables
    slots = update_guard.optimizer_slots(trainer.optimizer, head, model.trainable_variables)
    return list(head) + slots


@pytest.mark.parametrize("mirrored", [False, True])
def test_disabled_task_is_untouched_by_joint_adam_steps(mirrored, two_cpu_strategy):
    trainer, model = _joint(two_cpu_strategy if mirrored else None)
    trainer.train(tf.constant(2))  # Adam's moments of every variable are non-zero now.
    trainer.multi_task.disable_task("bar")
    assert trainer.multi_task.active_tasks == ["foo"]
    bar_before = _values(_head_and_slots(trainer, model, "bar"))
    assert len(bar_before) == 6  # kernel, bias and their two Adam moments each
    foo_before = _values(model.sub_tasks["foo"].head.trainable_variables)
    shared_before = model.shared.kernel.numpy().copy()
    logs = trainer.train(tf.constant(3))
    for before, after in zip(bar_before, _values(_head_and_slots(trainer, model, "bar"))):
        np.testing.assert_array_equal(before, after)
    assert not np.allclose(foo_before[0], model.sub_tasks["foo"].head.kernel.numpy())
    assert not np.allclose(shared_before, model.shared.kernel.numpy())
    assert int(logs["bar"]["task_steps"]) == 2 and int(logs["foo"]["task_steps"]) == 5
    assert logs["bar"]["active"] == 0.0 and logs["foo"]["active"] == 1.0
    # No training loss was recorded for the disabled task; the total is foo's.
    assert logs["bar"]["training_loss"] == 0.0
    np.testing.assert_allclose(logs["total_loss"], logs["foo"]["training_loss"], rtol=1e-6)


def test_joint_step_skips_the_disabled_forward_pass():
    trainer, _ = _joint(disabled_tasks=["bar"])
    calls = tf.Variable(0)
    task = trainer.multi_task.tasks["bar"]
    original = task.build_losses

    def counting_losses(*args, **kwargs):
        calls.assign_add(1)
        return original(*args, **kwargs)

    task.build_losses = counting_losses
    trainer.train(tf.constant(3))
    assert int(calls.numpy()) == 0
    trainer.multi_task.enable_task("bar")
    trainer.train(tf.constant(3))
    assert int(calls.numpy()) == 3


def test_no_active_task_changes_nothing_but_the_global_step():
    trainer, model = _joint()
    trainer.train(tf.constant(1))
    for name in ("foo", "bar"):
        trainer.multi_task.disable_task(name)
    before = _values(model.variables + trainer.optimizer.variables)
    trainer.train(tf.constant(2))
    for old, new in zip(before, _values(model.variables + trainer.optimizer.variables)):
        np.testing.assert_array_equal(old, new)
    assert int(trainer.global_step.numpy()) == 3


def _traces(trainer):
    return sum(fn.experimental_get_tracing_count()
               for fn in trainer._train_loop_fns.values())  # pylint: disable=protected-access


@pytest.mark.parametrize("make", [_joint, _interleaving])
def test_toggling_traces_each_loop_plan_once(make):
    trainer, _ = make()
    control = trainer.multi_task.control
    plans = set()

    def cycle():
        for i in range(6):
            if i % 2:
                trainer.multi_task.enable_task("bar")
            else:
                trainer.multi_task.disable_task("bar")
            control.set_loss_weight("foo", 1.0 + i)
            control.set_learning_rate_multiplier("foo", 0.5 + 0.25 * i)
            plans.add(control.loop_plan())
            trainer.train(tf.constant(2))

    trainer.train(tf.constant(2))
    assert _traces(trainer) == 1
    cycle()
    # Plain, bar off + foo scaled, foo scaled, bar off (foo at 1.0).
    assert len(plans | {task_control.LoopPlan(("foo", "bar"), frozenset())}) == 4
    assert _traces(trainer) == 4
    cycle()
    assert _traces(trainer) == 4


def test_loop_plan_names_what_the_loop_must_handle():
    trainer, _ = _joint(disabled_tasks=["bar"])
    control = trainer.multi_task.control
    assert control.loop_plan() == task_control.LoopPlan(("foo",), frozenset())
    trainer.multi_task.enable_task("bar")
    control.set_learning_rate_multiplier("foo", 0.0)
    assert control.loop_plan() == task_control.LoopPlan(("foo", "bar"), frozenset({"foo"}))


def test_step_windows_set_the_plan_and_where_it_changes():
    control = multitask.MultiTask(
        [toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())],
        active_steps={"foo": (3, 7)}).control
    assert [control.loop_plan(step).active for step in (0, 2, 3, 6, 7)] == [
        ("bar",), ("bar",), ("foo", "bar"), ("foo", "bar"), ("bar",)]
    assert [control.steps_until_change(step) for step in (0, 2, 3, 6, 7)] == [3, 1, 4, 1, None]
    assert control.is_active("foo", 3) and not control.is_active("foo", 7) and control.is_active("foo")


@pytest.mark.parametrize("make", [_joint, _interleaving])
def test_a_disabled_task_is_not_in_the_traced_loop(make):
    """No forward pass, no cond on a flag, no copies: a task that is off is simply absent."""
    trainer, _ = make()
    trainer.train(tf.constant(1))
    plain = _loop_ops(trainer)
    trainer.multi_task.disable_task("bar")
    trainer.train(tf.constant(1))
    without_bar = _loop_ops(trainer)
    assert without_bar["MatMul"] < plain["MatMul"]
    assert without_bar["If"] + without_bar["StatelessIf"] <= plain["If"] + plain["StatelessIf"]
    assert without_bar["Identity"] <= plain["Identity"]


def _loop_ops(trainer):
    """Op counts of the current traced loop's graph and all its functions."""
    loop = trainer._train_loop_fn  # pylint: disable=protected-access
    graph_def = loop.get_concrete_function(
        trainer._train_iter, tf.constant(1)).graph.as_graph_def()  # pylint: disable=protected-access
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return collections.Counter(node.op for node in nodes)


def test_interleaving_never_samples_a_disabled_task(two_cpu_strategy):
    trainer, model = _interleaving(two_cpu_strategy, disabled_tasks=["foo"])
    foo_before = _values(model.sub_tasks["foo"].head.trainable_variables)
    trainer.train(tf.constant(12))
    assert int(trainer.task_step_counter("foo").numpy()) == 0
    assert int(trainer.task_step_counter("bar").numpy()) == 12
    for old, new in zip(foo_before, _values(model.sub_tasks["foo"].head.trainable_variables)):
        np.testing.assert_array_equal(old, new)
    trainer.multi_task.enable_task("foo")
    trainer.train(tf.constant(12))
    assert int(trainer.task_step_counter("foo").numpy()) > 0


def test_restrict_to_active_by_hand():
    cumulative = tf.constant([0.2, 0.5, 1.0])  # p = 0.2, 0.3, 0.5
    restricted, any_mass = task_sampler.restrict_to_active(cumulative, tf.constant([True, False, True]))
    np.testing.assert_allclose(restricted.numpy(), [0.2 / 0.7, 0.2 / 0.7, 1.0], rtol=1e-6)
    assert bool(any_mass)
    # A trailing inactive task gets exactly zero mass.
    restricted, _ = task_sampler.restrict_to_active(cumulative, tf.constant([True, True, False]))
    np.testing.assert_allclose(restricted.numpy()[0], 0.4, rtol=1e-6)
    assert list(restricted.numpy()[1:]) == [1.0, 1.0]
    _, any_mass = task_sampler.restrict_to_active(cumulative, tf.constant([False, False, False]))
    assert not bool(any_mass)


def test_knobs_fall_back_to_task_weight():
    mt = _multi_task(task_weights={"foo": 2.0, "bar": 3.0}, loss_weights={"bar": 0.5},
                     sampling_weights={"foo": 4.0})
    assert mt.control.initial_loss_weights == {"foo": 2.0, "bar": 0.5}
    assert mt.sampling_weights == {"foo": 4.0, "bar": 3.0}
    assert float(mt.control.learning_rate_multiplier("foo")) == 1.0
    with pytest.raises(ValueError, match="learning_rate_multiplier"):
        _multi_task(learning_rate_multipliers={"foo": -1.0})
    with pytest.raises(ValueError, match="unknown tasks"):
        _multi_task(loss_weights={"baz": 1.0})
    with pytest.raises(KeyError, match="baz"):
        mt.disable_task("baz")


def test_loss_weight_enters_the_joint_loss_and_is_logged():
    trainer, _ = _joint(loss_weights={"foo": 2.0})
    logs = trainer.train(tf.constant(3))
    np.testing.assert_allclose(
        logs["total_loss"], 2.0 * logs["foo"]["training_loss"] + logs["bar"]["training_loss"], rtol=1e-5
    )
    assert logs["foo"]["loss_weight"] == 2.0 and "loss_weight" not in logs["bar"]


def test_schedule_factors_by_hand():
    piecewise = configs.LossWeightScheduleConfig(type="piecewise", boundaries=(10, 20), values=(0.0, 0.5, 1.0))
    linear = configs.LossWeightScheduleConfig(type="linear", boundaries=(100, 300), values=(0.0, 1.0))
    for step, expected in ((0, 0.0), (9, 0.0), (10, 0.5), (19, 0.5), (20, 1.0), (1000, 1.0)):
        assert float(task_control.schedule_factor(piecewise, step)) == expected
    for step, expected in ((0, 0.0), (100, 0.0), (150, 0.25), (300, 1.0), (400, 1.0)):
        np.testing.assert_allclose(float(task_control.schedule_factor(linear, step)), expected, atol=1e-6)
    single = configs.LossWeightScheduleConfig(type="linear", boundaries=(5,), values=(0.3,))
    np.testing.assert_allclose(float(task_control.schedule_factor(single, 100)), 0.3)
    with pytest.raises(ValueError, match="one more value"):
        task_control.validate_schedule(configs.LossWeightScheduleConfig(type="piecewise", boundaries=(1,), values=(1.0,)), "s")
    with pytest.raises(ValueError, match="strictly increasing"):
        task_control.validate_schedule(configs.LossWeightScheduleConfig(type="linear", boundaries=(2, 1), values=(1.0, 1.0)), "s")


def test_scheduled_loss_weight_follows_the_global_step():
    ramp = configs.LossWeightScheduleConfig(type="piecewise", boundaries=(2,), values=(0.0, 1.0))
    trainer, _ = _joint(loss_weight_schedules={"bar": ramp})
    first = trainer.train(tf.constant(2))
    np.testing.assert_allclose(first["total_loss"], first["foo"]["training_loss"], rtol=1e-6)
    second = trainer.train(tf.constant(2))
    np.testing.assert_allclose(
        second["total_loss"], second["foo"]["training_loss"] + second["bar"]["training_loss"], rtol=1e-5
    )
    assert second["bar"]["loss_weight"] == 1.0


@pytest.mark.parametrize("mirrored", [False, True])
def test_learning_rate_multiplier_scales_the_task_update(mirrored, two_cpu_strategy):
    strategy = two_cpu_strategy if mirrored else None
    plain, plain_model = _joint(strategy, keras.optimizers.SGD(0.1))
    half, half_model = _joint(strategy, keras.optimizers.SGD(0.1), learning_rate_multipliers={"foo": 0.5})
    start = _values(plain_model.sub_tasks["foo"].head.trainable_variables)
    for old, other in zip(start, _values(half_model.sub_tasks["foo"].head.trainable_variables)):
        np.testing.assert_array_equal(old, other)
    plain.train(tf.constant(1))
    logs = half.train(tf.constant(1))
    full = [new - old for old, new in zip(start, _values(plain_model.sub_tasks["foo"].head.trainable_variables))]
    scaled = [new - old for old, new in zip(start, _values(half_model.sub_tasks["foo"].head.trainable_variables))]
    for f, s in zip(full, scaled):
        np.testing.assert_allclose(s, 0.5 * f, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(plain_model.shared.kernel.numpy(), half_model.shared.kernel.numpy())
    assert logs["foo"]["learning_rate_multiplier"] == 0.5


def test_control_is_checkpointed(tmp_path):
    trainer, _ = _joint()
    trainer.multi_task.disable_task("bar")
    trainer.multi_task.control.set_loss_weight("foo", 3.0)
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    fresh, _ = _joint()
    fresh.checkpoint.read(path).assert_existing_objects_matched()
    assert fresh.multi_task.active_tasks == ["foo"]
    assert float(fresh.multi_task.control.loss_weight("foo")) == 3.0


def test_from_config_reads_the_routine_knobs():
    ramp = configs.LossWeightScheduleConfig(type="linear", boundaries=(0, 10), values=(0.0, 1.0))
    config = configs.MultiTaskConfig(task_routines=(
        configs.TaskRoutine(task_config=toy.FooConfig(), task_weight=2.0, sampling_weight=5.0,
                            learning_rate_multiplier=0.1, loss_weight_schedule=ramp),
        configs.TaskRoutine(task_config=toy.BarConfig(), loss_weight=0.5, enabled=False),
    ))
    mt = multitask.MultiTask.from_config(config)
    assert mt.active_tasks == ["foo"]
    assert mt.sampling_weights == {"foo": 5.0, "bar": 1.0}
    assert mt.control.initial_loss_weights == {"foo": 2.0, "bar": 0.5}
    np.testing.assert_allclose(float(mt.control.loss_weight("foo", 5)), 1.0)
    np.testing.assert_allclose(float(mt.control.learning_rate_multiplier("foo")), 0.1)
    bad = configs.MultiTaskConfig(task_routines=(
        configs.TaskRoutine(task_config=toy.FooConfig(),
                            loss_weight_schedule=configs.LossWeightScheduleConfig(type="cosine")),
    ))
    with pytest.raises(ValueError, match=r"task_routines\[0\].loss_weight_schedule.type"):
        bad.validate()


def test_epoch_shuffled_trainer_trains_each_task_its_batches_per_epoch():
    keras.utils.set_random_seed(0)
    mt = _multi_task()
    trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
        mt, toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.01),
        task_sampler.EpochShuffledTaskSampler({"foo": 3, "bar": 5}),
    )
    trainer.train(tf.constant(8))
    assert [int(trainer.task_step_counter(n).numpy()) for n in ("foo", "bar")] == [3, 5]
    trainer.train(tf.constant(8))
    assert [int(trainer.task_step_counter(n).numpy()) for n in ("foo", "bar")] == [6, 10]


def test_interleaving_on_a_shared_dataset_resumes_after_the_trained_batches():
    x, y = toy.toy_arrays(5)
    shared = tf.data.Dataset.from_tensor_slices((x, {"foo": y, "bar": -y})).repeat().batch(8)
    keras.utils.set_random_seed(0)
    mt = _multi_task(disabled_tasks=["bar"])
    trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
        mt, toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.01),
        task_sampler.RoundRobinTaskSampler(mt.sampling_weights), train_datasets=shared,
    )
    trainer.train(tf.constant(3))
    assert trainer._batches_consumed(None) == 3  # pylint: disable=protected-access


def test_interleaving_task_optimizers_step_their_own_tasks(tmp_path):
    keras.utils.set_random_seed(0)
    mt = _multi_task()
    model = toy.ToyMultiTaskModel()
    frozen = keras.optimizers.SGD(0.0)
    trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
        mt, model, keras.optimizers.SGD(0.1), task_sampler.RoundRobinTaskSampler(mt.sampling_weights),
        task_optimizers={"foo": frozen},
    )
    foo_head = _values(model.sub_tasks["foo"].head.trainable_variables)
    logs = trainer.train(tf.constant(4))
    for old, new in zip(foo_head, _values(model.sub_tasks["foo"].head.trainable_variables)):
        np.testing.assert_array_equal(old, new)
    assert int(frozen.iterations.numpy()) == 2 and int(trainer.optimizer.iterations.numpy()) == 2
    assert logs["foo"]["learning_rate"] == 0.0 and "learning_rate" not in logs["bar"]
    names = [n for n, _ in tf.train.list_variables(trainer.checkpoint.save(str(tmp_path / "c")))]
    assert any(n.startswith("task_optimizers/foo/") for n in names)
    with pytest.raises(KeyError, match="baz"):
        interleaving_trainer.MultiTaskInterleavingTrainer(
            mt, model, keras.optimizers.SGD(0.1), task_sampler.RoundRobinTaskSampler(mt.sampling_weights),
            task_optimizers={"baz": keras.optimizers.SGD(0.1)},
        )


def test_shared_learning_rate_multiplier_scales_the_trunk_update(tmp_path):
    plain, plain_model = _joint(optimizer=keras.optimizers.SGD(0.1))
    keras.utils.set_random_seed(0)
    mt = _multi_task()
    model = toy.ToyMultiTaskModel()
    half = base_trainer.MultiTaskBaseTrainer(mt, model, keras.optimizers.SGD(0.1), shared_learning_rate_multiplier=0.5)
    start = plain_model.shared.kernel.numpy().copy()
    np.testing.assert_array_equal(start, model.shared.kernel.numpy())
    plain.train(tf.constant(1))
    half.train(tf.constant(1))
    np.testing.assert_allclose(model.shared.kernel.numpy() - start,
                               0.5 * (plain_model.shared.kernel.numpy() - start), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.sub_tasks["foo"].head.kernel.numpy(),
                               plain_model.sub_tasks["foo"].head.kernel.numpy(), rtol=1e-6)
    assert "shared_learning_rate_multiplier" in [n.split("/")[0] for n, _ in tf.train.list_variables(
        half.checkpoint.write(str(tmp_path / "ckpt")))]


def test_trainer_config_errors_for_the_optimizer_knobs():
    from multitask import train_lib
    from official.core import config_definitions as cfg

    sgd = {"optimizer": {"type": "sgd"}, "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.1}}}
    params = configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(task_routines=(
            configs.TaskRoutine(task_config=toy.FooConfig(), optimizer_config=sgd),
            configs.TaskRoutine(task_config=toy.BarConfig()),
        )),
        trainer=configs.MultiTaskTrainerConfig(trainer_type="joint", optimizer_config=sgd),
        runtime=cfg.RuntimeConfig(),
    )
    for trainer_type in ("joint", "interleaving"):
        params.trainer.trainer_type = trainer_type
        trainer = train_lib.get_trainer(tf.distribute.get_strategy(), params, _multi_task(), toy.ToyMultiTaskModel())
        assert trainer.task_optimizer("foo") is not trainer.optimizer
        assert trainer.task_optimizer("bar") is trainer.optimizer
    with pytest.raises(ValueError, match="shared_learning_rate_multiplier is the joint trainer's"):
        configs.MultiTaskTrainerConfig(trainer_type="interleaving", shared_learning_rate_multiplier=0.5).validate()


def test_joint_task_optimizer_updates_its_head_only():
    """foo's head follows foo's own SGD(0.5); the trunk and bar follow the trainer's SGD(0.1)."""
    keras.utils.set_random_seed(0)
    model = toy.ToyMultiTaskModel()
    trainer = base_trainer.MultiTaskBaseTrainer(
        _multi_task(), model, keras.optimizers.SGD(0.1), task_optimizers={"foo": keras.optimizers.SGD(0.5)})
    keras.utils.set_random_seed(0)
    reference_model = toy.ToyMultiTaskModel()
    reference = base_trainer.MultiTaskBaseTrainer(_multi_task(), reference_model, keras.optimizers.SGD(0.1))
    for a, b in zip(model.trainable_variables, reference_model.trainable_variables):
        b.assign(a)
    foo_head = model.sub_tasks["foo"].head.kernel.numpy()
    logs = trainer.train(tf.constant(1))
    reference.train(tf.constant(1))
    reference_step = reference_model.sub_tasks["foo"].head.kernel.numpy() - foo_head
    np.testing.assert_allclose(model.sub_tasks["foo"].head.kernel.numpy() - foo_head, 5 * reference_step, rtol=1e-5)
    np.testing.assert_allclose(model.shared.kernel.numpy(), reference_model.shared.kernel.numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.sub_tasks["bar"].head.kernel.numpy(),
                               reference_model.sub_tasks["bar"].head.kernel.numpy(), rtol=1e-6)
    assert int(trainer.task_optimizer("foo").iterations.numpy()) == 1
    assert logs["foo"]["learning_rate"] == pytest.approx(0.5)


def test_joint_task_optimizers_are_refused_under_float16():
    runtime.set_mixed_precision_policy("float16")
    try:
        with pytest.raises(ValueError, match="mixed_float16"):
            base_trainer.MultiTaskBaseTrainer(_multi_task(), toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.1),
                                              task_optimizers={"foo": keras.optimizers.SGD(0.5)})
    finally:
        runtime.set_mixed_precision_policy(None)


def test_step_windows_from_config_toggle_at_exact_steps():
    config = configs.MultiTaskConfig(task_routines=(
        configs.TaskRoutine(task_config=toy.FooConfig(), stop_step=2),
        configs.TaskRoutine(task_config=toy.BarConfig(), start_step=3),
    ))
    keras.utils.set_random_seed(0)
    mt = multitask.MultiTask.from_config(config)
    trainer = base_trainer.MultiTaskBaseTrainer(mt, toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.01))
    trainer.train(tf.constant(5))  # one loop of 5 steps: the windows act inside it
    assert [int(trainer.task_step_counter(n).numpy()) for n in ("foo", "bar")] == [2, 2]
    assert trainer._train_loop_fn.experimental_get_tracing_count() == 1  # pylint: disable=protected-access
    bad = configs.MultiTaskConfig(task_routines=(
        configs.TaskRoutine(task_config=toy.FooConfig(), start_step=4, stop_step=4),
    ))
    with pytest.raises(ValueError, match=r"task_routines\[0\]: start_step 4 and stop_step 4"):
        bad.validate()


def _steps(trainer):
    return {name: int(trainer.task_step_counter(name).numpy()) for name in ("foo", "bar")}


@pytest.mark.parametrize("sampler", [task_sampler.ProportionalTaskSampler,
                                     lambda w: task_sampler.AnnealingTaskSampler(w, 10, 40)])
def test_sampling_weight_changes_sampling_without_retracing(sampler):
    trainer, _ = _interleaving(sampler=sampler, sampling_weights={"foo": 1.0, "bar": 1.0})
    logs = trainer.train(tf.constant(6))
    assert logs["foo"]["sampling_weight"] == 1.0 and logs["bar"]["sampling_weight"] == 1.0
    trainer.multi_task.control.set_sampling_weight("foo", 0.0)
    before = _steps(trainer)
    logs = trainer.train(tf.constant(12))
    assert _steps(trainer) == {"foo": before["foo"], "bar": before["bar"] + 12}
    assert logs["foo"]["sampling_weight"] == 0.0
    trainer.multi_task.control.set_sampling_weight("foo", 1.0)
    trainer.multi_task.control.set_sampling_weight("bar", 0.0)
    before = _steps(trainer)
    trainer.train(tf.constant(12))
    assert _steps(trainer) == {"foo": before["foo"] + 12, "bar": before["bar"]}
    # Every weight 0: the steps train nothing.
    trainer.multi_task.control.set_sampling_weight("foo", 0.0)
    before = _steps(trainer)
    trainer.train(tf.constant(3))
    assert _steps(trainer) == before and int(trainer.global_step.numpy()) == 33
    assert trainer._train_loop_fn.experimental_get_tracing_count() == 1  # pylint: disable=protected-access


def test_sampling_weight_is_logged_when_changed_and_ignored_by_uniform():
    trainer, _ = _interleaving()
    assert "sampling_weight" not in trainer.train(tf.constant(2))["foo"]
    trainer.multi_task.control.set_sampling_weight("foo", 0.0)
    logs = trainer.train(tf.constant(8))
    assert logs["foo"]["sampling_weight"] == 0.0 and "sampling_weight" not in logs["bar"]
    assert int(trainer.task_step_counter("foo").numpy()) > 0  # uniform sampling ignores weights


def test_sampling_weight_is_checkpointed(tmp_path):
    trainer, _ = _interleaving(sampler=task_sampler.ProportionalTaskSampler)
    trainer.multi_task.control.set_sampling_weight("bar", 0.25)
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    fresh, _ = _interleaving(sampler=task_sampler.ProportionalTaskSampler)
    fresh.checkpoint.read(path).assert_existing_objects_matched()
    assert fresh.multi_task.sampling_weights == {"foo": 1.0, "bar": 0.25}
    assert fresh.multi_task.control.initial_sampling_weights == {"foo": 1.0, "bar": 1.0}


def test_sampling_weight_errors():
    control = _multi_task().control
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sampling_weight of task 'foo'"):
            control.set_sampling_weight("foo", bad)
    with pytest.raises(KeyError, match="baz"):
        control.set_sampling_weight("baz", 1.0)
    assert control.sampling_weights == {"foo": 1.0, "bar": 1.0}
    mt = _multi_task()
    with pytest.raises(ValueError, match="differ from the MultiTask's sampling weights"):
        interleaving_trainer.MultiTaskInterleavingTrainer(
            mt, toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.1),
            task_sampler.ProportionalTaskSampler({"foo": 1.0, "bar": 2.0}),
        )


def test_sampling_weight_under_two_replicas(two_cpu_strategy):
    trainer, _ = _interleaving(two_cpu_strategy, sampler=task_sampler.ProportionalTaskSampler)
    trainer.multi_task.control.set_sampling_weight("bar", 0.0)
    trainer.train(tf.constant(6))
    assert _steps(trainer) == {"foo": 6, "bar": 0}
