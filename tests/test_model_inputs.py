"""Sub-models that are plain subclassed keras.Models, unbuilt and without `inputs`.

The trainers, the evaluator and preflight build them from their task's data
(`multitask.model_inputs`); a lazily built model must train exactly as the
same model built by hand before the trainer exists.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask import base_model
from multitask import base_trainer
from multitask import evaluator as evaluator_lib
from multitask import interleaving_trainer
from multitask import model_inputs
from multitask import multitask
from multitask import preflight
from multitask import task_sampler
from multitask import weighting


class Encoder(keras.Model):
    """Subclassed, no `inputs`, no `build()`: variables appear on the first call."""

    def __init__(self):
        super().__init__(name="encoder")
        self.dense = keras.layers.Dense(3, activation="tanh")

    def call(self, x, training=None):
        return self.dense(x)


class SubModel(keras.Model):
    def __init__(self, encoder, name):
        super().__init__(name=name)
        self.encoder = encoder
        self.head = keras.layers.Dense(1)

    def call(self, x, training=None):
        return self.head(self.encoder(x, training=training))


class SubclassedModel(base_model.MultiTaskBaseModel):
    def __init__(self, **kwargs):
        self.encoder = Encoder()
        super().__init__(**kwargs)

    def _instantiate_sub_tasks(self):
        return {name: SubModel(self.encoder, name) for name in ("foo", "bar")}


def _tasks():
    return [toy.ToyTask(toy.FooConfig()), toy.ToyTask(toy.BarConfig())]


def _train(strategy, trainer_type, method, prebuilt, steps=4, disabled=()):
    """Trains a fresh SubclassedModel; returns its variables after `steps` steps."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = SubclassedModel()
        if prebuilt:  # By hand, eagerly, as a user would before this library built models.
            for sub_model in model.sub_tasks.values():
                sub_model(np.zeros((1, 2), np.float32))
        else:
            assert not any(m.built for m in model.sub_tasks.values())
        task = multitask.MultiTask(_tasks(), disabled_tasks=disabled)
        if trainer_type == "joint":
            trainer = base_trainer.MultiTaskBaseTrainer(
                task, model, keras.optimizers.Adam(0.05),
                weighting=weighting.get_weighting(method, 2) if method else None)
        else:
            trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
                task, model, keras.optimizers.Adam(0.05), task_sampler.UniformTaskSampler(task.sampling_weights))
    assert all(m.built for m in model.sub_tasks.values())
    logs = trainer.train(tf.constant(steps))
    assert all(np.isfinite(logs[name]["training_loss"]) for name in ("foo", "bar"))
    return [v.numpy() for v in model.variables]


@pytest.mark.parametrize("trainer_type, method, mirrored", [
    ("joint", None, False), ("joint", None, True), ("joint", "pcgrad", False), ("joint", "uw", True),
    ("interleaving", None, False), ("interleaving", None, True),
])
def test_lazily_built_sub_models_train_like_prebuilt_ones(trainer_type, method, mirrored, two_cpu_strategy):
    strategy = two_cpu_strategy if mirrored else tf.distribute.get_strategy()
    lazy = _train(strategy, trainer_type, method, prebuilt=False)
    by_hand = _train(strategy, trainer_type, method, prebuilt=True)
    # encoder kernel + bias, and one head kernel + bias per task.
    assert [v.shape for v in lazy] == [(2, 3), (3,), (3, 1), (1,), (3, 1), (1,)]
    for got, want in zip(lazy, by_hand):
        np.testing.assert_array_equal(got, want)


def test_lazy_build_under_mixed_precision_with_a_disabled_task():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        lazy = _train(tf.distribute.get_strategy(), "joint", None, prebuilt=False, disabled=("bar",))
        by_hand = _train(tf.distribute.get_strategy(), "joint", None, prebuilt=True, disabled=("bar",))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(v.dtype == np.float32 for v in lazy)
    for got, want in zip(lazy, by_hand):
        np.testing.assert_array_equal(got, want)
    keras.utils.set_random_seed(0)
    untrained = SubclassedModel()
    untrained.build({name: tf.TensorSpec((None, 2)) for name in ("foo", "bar")})
    np.testing.assert_array_equal(lazy[4], untrained.sub_tasks["bar"].head.kernel.numpy())  # bar stayed off.
    assert not np.array_equal(lazy[2], untrained.sub_tasks["foo"].head.kernel.numpy())


def test_evaluator_builds_then_restores_a_checkpoint(tmp_path):
    task = multitask.MultiTask(_tasks())
    trained = SubclassedModel()
    trainer = base_trainer.MultiTaskBaseTrainer(task, trained, keras.optimizers.Adam(0.05))
    trainer.train(tf.constant(5))
    path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
    expected = evaluator_lib.MultiTaskEvaluator(task.tasks, trained).evaluate(-1)
    fresh = SubclassedModel()
    evaluator = evaluator_lib.MultiTaskEvaluator(task.tasks, fresh)  # Built here, from the validation data.
    evaluator.checkpoint.read(path).expect_partial().assert_existing_objects_matched()
    got = evaluator.evaluate(-1)
    assert set(got) == {"foo", "bar"} and set(got["foo"]) == {"validation_loss", "mae"}
    assert got == expected
    for restored, original in zip(fresh.variables, trained.variables):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())


def test_one_subclassed_keras_model_for_a_single_task():
    task = multitask.MultiTask([toy.ToyTask(toy.FooConfig())])
    model = SubModel(Encoder(), "foo")
    trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
        task, model, keras.optimizers.SGD(0.1), task_sampler.UniformTaskSampler(task.sampling_weights))
    before = float(trainer.train(tf.constant(3))["foo"]["training_loss"])
    after = float(trainer.train(tf.constant(20))["foo"]["training_loss"])
    assert after < before


def test_dict_features_keep_their_structure():
    class DictModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, features, training=None):
            return self.dense(keras.ops.concatenate([features["a"], features["b"]], axis=-1))

    spec = {"a": tf.TensorSpec((None, 2), tf.float32), "b": tf.TensorSpec((None, 3), tf.float32)}
    model = DictModel()
    assert model_inputs.needs_data(model)
    model_inputs.build_model(model, "The model", spec)
    assert model.dense.kernel.shape == (5, 1)
    inputs = model_inputs.fresh_inputs(spec)
    functional = keras.Model(inputs, model(inputs))
    assert set(model_inputs.input_structure(functional)) == {"a", "b"}  # A dict, though `inputs` is a list.


def test_a_failing_first_call_is_one_line_naming_the_task():
    class Broken(keras.Model):
        def call(self, x, training=None):
            return x["missing"]

    class Model(base_model.MultiTaskBaseModel):
        def _instantiate_sub_tasks(self):
            return {"foo": Broken()}

    task = multitask.MultiTask([toy.ToyTask(toy.FooConfig())])
    with pytest.raises(ValueError, match=r"Sub-model of task 'foo' \(Broken\) failed on its first call, on "
                                         r"inputs float32\[None, 2\]") as error:
        base_trainer.MultiTaskBaseTrainer(task, Model(), keras.optimizers.SGD(0.1))
    # gin appends the configurable's name on a line of its own; the message is the first line.
    assert str(error.value).splitlines()[0].endswith("fix its call() or build().")
    with pytest.raises(preflight.DataError, match="task 'foo'.*failed on its first call"):
        preflight.check_data(task, Model())
