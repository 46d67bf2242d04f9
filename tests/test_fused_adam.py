"""Tests for FusedAdam / FusedAdamW: Keras 3's Adam numbers through TF's fused kernel."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from multitask.core import fused_adam

STEPS = 4


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.standard_normal(shape).astype(np.float32), name=name)
            for name, shape in (("kernel", (5, 3)), ("bias", (3,)))]


def _gradients(step):
    rng = np.random.default_rng(100 + step)
    return [tf.constant(rng.standard_normal(shape).astype(np.float32)) for shape in ((5, 3), (3,))]


def _train(optimizer, variables, jit_compile=False):
    optimizer.build(variables)
    step = tf.function(lambda grads: optimizer.apply(grads, variables), jit_compile=jit_compile)
    for i in range(STEPS):
        step(_gradients(i))
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("make_fused, make_keras", [
    (lambda: fused_adam.FusedAdam(0.01), lambda: keras.optimizers.Adam(0.01)),
    (lambda: fused_adam.FusedAdam(0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
     lambda: keras.optimizers.Adam(0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-3)),
    (lambda: fused_adam.FusedAdam(keras.optimizers.schedules.ExponentialDecay(0.01, 1, 0.5)),
     lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 1, 0.5))),
    (lambda: fused_adam.FusedAdam(0.01, amsgrad=True), lambda: keras.optimizers.Adam(0.01, amsgrad=True)),
    (lambda: fused_adam.FusedAdamW(0.01, weight_decay=0.1), lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1)),
    (lambda: fused_adam.FusedAdam(0.01, global_clipnorm=0.5),
     lambda: keras.optimizers.Adam(0.01, global_clipnorm=0.5)),
])
def test_same_variables_and_slots_as_keras(make_fused, make_keras):
    fused = _train(make_fused(), _variables())
    reference = _train(make_keras(), _variables())
    assert len(fused) == len(reference)
    for got, want in zip(fused, reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_one_fused_op_per_variable():
    variables = _variables()
    optimizer = fused_adam.FusedAdam(0.01)
    optimizer.build(variables)
    graph = tf.function(lambda grads: optimizer.apply(grads, variables)).get_concrete_function(
        _gradients(0)).graph
    ops = [op.type for op in graph.get_operations()]
    assert ops.count("ResourceApplyAdam") == len(variables)
    keras_optimizer = keras.optimizers.Adam(0.01)
    keras_optimizer.build(variables)
    keras_graph = tf.function(lambda grads: keras_optimizer.apply(grads, variables)).get_concrete_function(
        _gradients(0)).graph
    assert "ResourceApplyAdam" not in [op.type for op in keras_graph.get_operations()]
    assert len(ops) < len(keras_graph.get_operations())


def test_xla_compiled_step_matches():
    compiled = _train(fused_adam.FusedAdam(0.01), _variables(), jit_compile=True)
    for got, want in zip(compiled, _train(keras.optimizers.Adam(0.01), _variables())):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_sparse_gradients_fall_back_to_keras():
    def train(optimizer):
        keras.utils.set_random_seed(0)
        embedding = keras.layers.Embedding(10, 4)
        embedding.build((None,))
        optimizer.build(embedding.trainable_variables)
        for ids in ([1, 2, 2], [3, 1, 7]):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(embedding(tf.constant(ids)) ** 2)
            grads = tape.gradient(loss, embedding.trainable_variables)
            assert isinstance(grads[0], tf.IndexedSlices)
            optimizer.apply(grads, embedding.trainable_variables)
        return embedding.embeddings.numpy()

    np.testing.assert_allclose(train(fused_adam.FusedAdam(0.1)), train(keras.optimizers.Adam(0.1)), rtol=1e-6)


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    def train(strategy, make):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                      keras.layers.Dense(1)])
            optimizer = make()
            optimizer.build(model.trainable_variables)
        features = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensor_slices((features, features[:, :1])).batch(8).repeat(3))

        @tf.function
        def step(inputs):
            def replica_fn(x, y):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum((model(x) - y) ** 2) / 8.0
                optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
            strategy.run(replica_fn, args=inputs)

        for inputs in dataset:
            step(inputs)
        return [v.numpy() for v in model.trainable_variables]

    default = tf.distribute.get_strategy()
    reference = train(default, lambda: keras.optimizers.Adam(0.05))
    for strategy in (default, two_cpu_strategy):
        for got, want in zip(train(strategy, lambda: fused_adam.FusedAdam(0.05)), reference):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_checkpoints_are_interchangeable_with_keras_adam(tmp_path):
    variables = _variables()
    fused = fused_adam.FusedAdam(0.01)
    _train(fused, variables)
    path = tf.train.Checkpoint(variables=variables, optimizer=fused).save(str(tmp_path / "ckpt"))
    restored_variables = _variables(seed=1)
    plain = keras.optimizers.Adam(0.01)
    plain.build(restored_variables)
    tf.train.Checkpoint(variables=restored_variables, optimizer=plain).restore(path).assert_consumed()
    for got, want in zip(plain.variables + restored_variables, fused.variables + variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_serializes_as_its_own_class():
    optimizer = fused_adam.FusedAdamW(0.003, weight_decay=0.02, beta_1=0.8)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is fused_adam.FusedAdamW
    assert restored.get_config() == optimizer.get_config()
