"""Tests for the runtime: strategies, TPU fail-fast, XLA-compiled steps, bfloat16, determinism."""
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions as cfg

import toy
from multitask import base_trainer
from multitask import interleaving_trainer
from multitask import multitask
from multitask import task_sampler
from multitask import train
from multitask import weighting
from multitask.core import runtime


@pytest.mark.parametrize("name, expected", [
    ("default", type(tf.distribute.get_strategy())),
    ("off", type(tf.distribute.get_strategy())),
    ("one_device", tf.distribute.OneDeviceStrategy),
])
def test_strategies_through_distribute_utils(name, expected):
    strategy = runtime.get_distribution_strategy(cfg.RuntimeConfig(distribution_strategy=name))
    assert isinstance(strategy, expected)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("tpu, message", [
    (None, "runtime.distribution_strategy is 'tpu' but runtime.tpu is not set"),
    ("local", "runtime.distribution_strategy is 'tpu' but no TPU was found at runtime.tpu='local'"),
    ("grpc://127.0.0.1:{port}", "no TPU answers at runtime.tpu='grpc://127.0.0.1:"),
])
def test_tpu_without_a_tpu_fails_fast(tpu, message):
    config = cfg.RuntimeConfig(distribution_strategy="tpu", tpu=tpu and tpu.format(port=_free_port()))
    with pytest.raises((ValueError, RuntimeError), match=message):
        runtime.get_distribution_strategy(config)


def test_launcher_reports_a_missing_tpu_in_one_line(tmp_path):
    with pytest.raises(train.UsageError, match="runtime.tpu is not set") as error:
        train.run(train.launcher_flags(model_dir=str(tmp_path), params_override="runtime.distribution_strategy=tpu"))
    assert "\n" not in str(error.value) and not list(tmp_path.iterdir())


def _datasets():
    """Static batch shapes, as XLA (and a TPU) need."""
    options = tf.data.Options()
    options.autotune.enabled = False  # see conftest: autotuned iterators stall gc
    return {name: tf.data.Dataset.from_tensor_slices(toy.toy_arrays(seed)).repeat().batch(8, drop_remainder=True)
            .with_options(options) for name, seed in (("foo", 1), ("bar", 3))}


class HostOpTask(toy.ToyTask):
    """A loss computed by a host-side op (numpy), which XLA cannot compile."""

    def build_losses(self, labels, model_outputs, aux_losses=None):
        loss = super().build_losses(labels, model_outputs)
        zero = tf.numpy_function(lambda x: np.zeros_like(x), [tf.stop_gradient(loss)], tf.float32, stateful=False)
        return loss + tf.ensure_shape(zero, [])


def _trainer(kind, jit_compile, method=None, task_cls=toy.ToyTask):
    keras.utils.set_random_seed(2)
    mt = multitask.MultiTask([task_cls(toy.FooConfig()), toy.ToyTask(toy.BarConfig())])
    model = toy.ToyMultiTaskModel()
    common = dict(train_datasets=_datasets(), jit_compile=jit_compile)
    if kind == "interleaving":
        trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
            mt, model, keras.optimizers.Adam(0.01), task_sampler.UniformTaskSampler(mt.task_weights), **common)
    else:
        trainer = base_trainer.MultiTaskBaseTrainer(
            mt, model, keras.optimizers.Adam(0.01), weighting=weighting.get_weighting(method, 2) if method else None,
            **common)
    return trainer, model


@pytest.mark.parametrize("kind, method", [("joint", None), ("joint", "pcgrad"), ("joint", "uw"),
                                          ("interleaving", None)])
def test_train_loops_compile_with_xla_and_match_uncompiled(kind, method):
    compiled, model = _trainer(kind, True, method)
    logs = compiled.train(tf.constant(3))
    reference, reference_model = _trainer(kind, False, method)
    reference.train(tf.constant(3))
    assert int(compiled.global_step.numpy()) == 3 and np.isfinite(logs["foo"]["training_loss"])
    for a, b in zip(model.trainable_variables, reference_model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_xla_with_several_replicas_is_refused(two_cpu_strategy):
    with two_cpu_strategy.scope():
        with pytest.raises(ValueError, match="XLA cannot update the variables of 2 replicas of MirroredStrategy"):
            _trainer("joint", True)


@pytest.mark.parametrize("kind", ["joint", "interleaving"])
def test_xla_refuses_a_host_op_in_the_step(kind):
    """The same step runs uncompiled; compiled, the numpy op is found on the CPU, not on a TPU later."""
    _trainer(kind, False, task_cls=HostOpTask)[0].train(tf.constant(1))
    with pytest.raises(tf.errors.OpError, match="PyFunc|EagerPyFunc|numpy|not compilable|XLA"):
        _trainer(kind, True, task_cls=HostOpTask)[0].train(tf.constant(2))


def test_mixed_bfloat16_trains_with_float32_variables():
    runtime.set_mixed_precision_policy("bfloat16")
    try:
        trainer, model = _trainer("joint", False)
        assert model.sub_tasks["foo"].head.compute_dtype == "bfloat16"
        logs = trainer.train(tf.constant(3))
        assert np.isfinite(logs["total_loss"])
        assert {v.dtype for v in model.variables} == {"float32"}
        assert not isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        runtime.set_mixed_precision_policy(None)


def test_mixed_float16_scales_losses_in_the_interleaving_trainer():
    runtime.set_mixed_precision_policy("float16")
    try:
        trainer, model = _trainer("interleaving", False)
        assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        logs = trainer.train(tf.constant(3))
        assert np.isfinite(logs["foo"]["training_loss"])
        assert {v.dtype for v in model.variables} == {"float32"}
    finally:
        runtime.set_mixed_precision_policy(None)


def test_seeded_launcher_runs_give_identical_variables(tmp_path):
    override = ("runtime.seed=5,trainer.train_steps=3,trainer.steps_per_loop=3,trainer.checkpoint_interval=3,"
                "trainer.summary_interval=3")
    values = []
    for run in ("a", "b"):
        train.run(train.launcher_flags(model_dir=str(tmp_path / run), params_override=override, mode="train"))
        reader = tf.train.load_checkpoint(str(tmp_path / run))
        values.append({name: reader.get_tensor(name) for name, _ in tf.train.list_variables(str(tmp_path / run))
                       if "OBJECT_GRAPH" not in name})
    assert len(values[0]) > 10 and values[0].keys() == values[1].keys()
    for name in values[0]:
        np.testing.assert_array_equal(values[0][name], values[1][name], err_msg=name)
