"""Tests for non-finite losses: raise naming task and step, or skip and count; no bad checkpoint."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions as cfg

import toy
from multitask import base_trainer
from multitask import configs
from multitask import interleaving_trainer
from multitask import multitask
from multitask.training import nonfinite
from multitask import task_sampler
from multitask import train_lib
from multitask import weighting

BATCH = 8


def _data(seed, bad_batches=(), value=np.nan, drop=()):
    """A dataset function of toy batches (global batch 8), `value` in one feature of `bad_batches`.

    Under two replicas the bad example falls in replica 0's half of the batch.
    """
    x, y = toy.toy_arrays(seed)
    x = x.copy()
    for b in bad_batches:
        x[b * BATCH + 1, 0] = value
    keep = [i for i in range(len(x)) if i // BATCH not in drop]

    def dataset_fn(input_context=None):
        batch = input_context.get_per_replica_batch_size(BATCH) if input_context else BATCH
        options = tf.data.Options()
        options.autotune.enabled = False  # see conftest: autotuned iterators stall gc
        dataset = tf.data.Dataset.from_tensor_slices((x[keep], y[keep])).repeat().batch(batch, drop_remainder=True)
        return dataset.with_options(options)

    return dataset_fn


def _mt():
    return multitask.MultiTask([toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])


def _joint(strategy, datasets, policy="raise", optimizer=None, method=None):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = toy.ToyMultiTaskModel()
        trainer = base_trainer.MultiTaskBaseTrainer(
            _mt(), model, optimizer or keras.optimizers.Adam(0.01), train_datasets=datasets,
            on_nonfinite=policy, weighting=weighting.get_weighting(method, 2) if method else None,
        )
    return trainer, model


def _finite(trainer, model):
    return all(np.all(np.isfinite(v.numpy())) for v in model.variables + trainer.optimizer.variables)


@pytest.mark.parametrize("method", [None, "pcgrad"])
def test_raise_names_task_and_step_and_stops_updating(method):
    trainer, model = _joint(tf.distribute.get_strategy(), {"foo": _data(1), "bar": _data(3, [2])}, method=method)
    with pytest.raises(nonfinite.NonFiniteLossError, match="task 'bar' has a NaN or Inf loss at step 3"):
        trainer.train(tf.constant(5))
    assert _finite(trainer, model)
    # Steps 1 and 2 updated; step 3 and the two after it did not.
    assert int(trainer.optimizer.iterations.numpy()) == 2
    reference, reference_model = _joint(tf.distribute.get_strategy(), {"foo": _data(1), "bar": _data(3)},
                                        method=method)
    reference.train(tf.constant(2))
    for a, b in zip(model.variables + trainer.optimizer.variables,
                    reference_model.variables + reference.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("method", [None, "uw", "pcgrad"])
def test_skip_equals_training_without_that_step(method):
    trainer, model = _joint(
        tf.distribute.get_strategy(), {"foo": _data(1, [1], np.inf), "bar": _data(3)}, "skip", method=method
    )
    logs = trainer.train(tf.constant(4))
    assert logs["nonfinite_steps"] == 1
    assert np.isfinite(logs["foo"]["training_loss"]) and np.isfinite(logs["total_loss"])
    reference, reference_model = _joint(
        tf.distribute.get_strategy(), {"foo": _data(1, drop=[1]), "bar": _data(3, drop=[1])}, "skip", method=method
    )
    reference.train(tf.constant(3))
    for a, b in zip(model.trainable_variables, reference_model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    assert int(trainer.optimizer.iterations.numpy()) == 3


def test_two_replicas_skip_together(two_cpu_strategy):
    """The NaN is in replica 0's half of the batch; both replicas skip the update."""
    trainer, model = _joint(two_cpu_strategy, {"foo": _data(1, [1]), "bar": _data(3)}, "skip")
    logs = trainer.train(tf.constant(3))
    one, one_model = _joint(tf.distribute.get_strategy(), {"foo": _data(1, [1]), "bar": _data(3)}, "skip")
    one.train(tf.constant(3))
    assert logs["nonfinite_steps"] == 1 and int(trainer.optimizer.iterations.numpy()) == 2
    for a, b in zip(model.trainable_variables, one_model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(nonfinite.NonFiniteLossError, match="task 'foo' .* at step 2"):
        _joint(two_cpu_strategy, {"foo": _data(1, [1]), "bar": _data(3)})[0].train(tf.constant(3))


def test_interleaving_raise_and_skip():
    def make(policy):
        with tf.distribute.get_strategy().scope():
            mt = _mt()
            return interleaving_trainer.MultiTaskInterleavingTrainer(
                mt, toy.ToyMultiTaskModel(), keras.optimizers.SGD(0.05),
                task_sampler.UniformTaskSampler(mt.task_weights),
                train_datasets={"foo": _data(1, range(8)), "bar": _data(3)}, on_nonfinite=policy,
            )

    raising = make("raise")
    with pytest.raises(nonfinite.NonFiniteLossError, match="task 'foo' has a NaN or Inf loss at step") as error:
        raising.train(tf.constant(6))
    first_bad = int(str(error.value).split("at step ")[1].split(";")[0])
    # Only the bar steps before foo's first (non-finite) step updated.
    assert int(raising.optimizer.iterations.numpy()) == first_bad - 1
    trainer = make("skip")
    logs = trainer.train(tf.constant(6))
    foo_steps = int(trainer.task_step_counter("foo").numpy())
    assert 0 < foo_steps < 6 and logs["nonfinite_steps"] == foo_steps
    assert int(trainer.optimizer.iterations.numpy()) == 6 - foo_steps
    assert np.isfinite(logs["bar"]["training_loss"])


def _params(policy):
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(task_routines=(
            configs.TaskRoutine(task_config=toy.FooConfig()), configs.TaskRoutine(task_config=toy.BarConfig()))),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type="joint", train_steps=6, steps_per_loop=2, checkpoint_interval=2, summary_interval=2,
            on_nonfinite=policy,
            optimizer_config={"optimizer": {"type": "sgd"},
                              "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.05}}},
        ),
        runtime=cfg.RuntimeConfig(distribution_strategy="default"),
    )


def test_run_that_raises_writes_no_checkpoint_after_the_bad_step(tmp_path):
    """NaN at step 3: ckpt-2 is written, ckpt-4 and ckpt-6 are not; ckpt-2 is finite."""
    params = _params("raise")
    trainer, model = _joint(tf.distribute.get_strategy(), {"foo": _data(1), "bar": _data(3, [2])})
    with pytest.raises(nonfinite.NonFiniteLossError, match="at step 3"):
        train_lib.run_experiment(distribution_strategy=tf.distribute.get_strategy(), task=_mt(), model=model,
                                 mode="train", params=params, model_dir=str(tmp_path), trainer=trainer)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    reader = tf.train.load_checkpoint(str(tmp_path))
    values = [reader.get_tensor(name) for name, _ in tf.train.list_variables(str(tmp_path))]
    assert all(np.all(np.isfinite(v)) for v in values if np.issubdtype(np.asarray(v).dtype, np.floating))


def test_config_reaches_the_trainer():
    params = _params("skip")
    params.runtime.enable_xla = True
    with tf.distribute.get_strategy().scope():
        trainer = train_lib.get_trainer(tf.distribute.get_strategy(), params, _mt(), toy.ToyMultiTaskModel())
    assert trainer.on_nonfinite == "skip" and trainer.jit_compile


def test_on_nonfinite_is_validated():
    with pytest.raises(ValueError, match="trainer.on_nonfinite is 'ignore'; allowed: raise, skip"):
        _params("ignore").validate()
    with pytest.raises(ValueError, match="trainer.on_nonfinite is 'ignore'"):
        _joint(tf.distribute.get_strategy(), None, "ignore")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finiteness_check_sees_one_bad_entry_in_any_tensor(bad):
    dense = tf.ones([3, 4])
    half = tf.ones([5], tf.float16)
    spoiled = tf.tensor_scatter_nd_update(tf.ones([3, 4]), [[2, 1]], [bad])
    slices = tf.IndexedSlices(tf.constant([[1.0, bad]]), tf.constant([0]), tf.constant([4, 2]))
    assert bool(nonfinite._all_finite([dense, None, half]))
    assert bool(nonfinite._all_finite([]))
    assert not bool(nonfinite._all_finite([dense, spoiled, half]))
    assert not bool(nonfinite._all_finite([dense, slices]))
    assert not bool(nonfinite._all_finite([tf.cast(spoiled, tf.float16)]))
