"""Tests for exporting a subset of a multi-task model's tasks (multitask.export)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import toy
from multitask.experiments import multi_digits
from multitask import base_model
from multitask import export
from multitask import train


def _model(tasks=("a", "b", "c")):
    encoder = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)], name="encoder"
    )
    heads = {}
    for i, task in enumerate(tasks):
        # All heads share one layer name: the export wraps each in a model named after its task.
        heads[task] = keras.layers.Dense(i + 1, name="head")
        heads[task].build((None, 3))
    return base_model.EncoderHeadsModel(encoder, heads)


def test_reloaded_subset_reproduces_the_task_outputs(tmp_path):
    model = _model()
    path = str(tmp_path / "ac.keras")
    export.export_tasks(model, ["c", "a"], path)
    reloaded = keras.saving.load_model(path)
    x, _ = toy.toy_arrays(0, n=5)
    outputs = reloaded(x)
    assert set(outputs) == {"a", "c"}
    for task in ("a", "c"):
        np.testing.assert_allclose(outputs[task], model.sub_tasks[task](x), rtol=1e-6, atol=1e-6)


def test_the_trunk_is_saved_once(tmp_path):
    model = _model()
    export.export_tasks(model, ["a"], str(tmp_path / "a.keras"))
    one = keras.saving.load_model(str(tmp_path / "a.keras"))
    path = str(tmp_path / "abc.keras")
    export.export_tasks(model, ["a", "b", "c"], path)
    three = keras.saving.load_model(path)
    assert [layer.name for layer in three.layers].count("encoder") == 1
    encoder_weights = len(model.encoder.weights)
    head_weights = 2
    assert len(three.weights) == encoder_weights + 3 * head_weights
    assert len(one.weights) == encoder_weights + head_weights
    # Every task reads the one encoder.
    encoder = three.get_layer("encoder")
    assert len(encoder._inbound_nodes) == 1  # pylint: disable=protected-access


def test_bad_requests_are_clear_errors(tmp_path):
    model = _model()
    with pytest.raises(KeyError, match=r"Unknown tasks \['z'\]; the model serves: a, b, c"):
        export.export_tasks(model, ["a", "z"], str(tmp_path / "x.keras"))
    with pytest.raises(ValueError, match="task_names is empty"):
        export.subset_model(model, [])
    with pytest.raises(ValueError, match="repeats a task"):
        export.subset_model(model, ["a", "a"])
    with pytest.raises(ValueError, match="must end in '.keras'"):
        export.export_tasks(model, ["a"], str(tmp_path / "x.h5"))
    with pytest.raises(ValueError, match="exports an EncoderHeadsModel"):
        export.subset_model(toy.ToyMultiTaskModel(), ["foo"])


def test_unserializable_custom_layer_is_a_clear_error(tmp_path):
    class Unregistered(keras.layers.Layer):
        def __init__(self, scale, **kwargs):
            super().__init__(**kwargs)
            self.scale = scale

        def call(self, x):
            return x * self.scale

    encoder = keras.Sequential([keras.Input((2,)), Unregistered(np.float32(2.0))], name="encoder")
    head = keras.layers.Dense(1)
    head.build((None, 2))
    model = base_model.EncoderHeadsModel(encoder, {"a": head})
    with pytest.raises(ValueError, match="register_keras_serializable"):
        export.export_tasks(model, ["a"], str(tmp_path / "x.keras"))


def test_cli_exports_the_latest_checkpoint_of_a_run(tmp_path):
    """multi_digits' encoder is a subclassed model: the inputs come from the task's data spec."""
    params = train.load_experiment("multi_digits")
    model = multi_digits.MultiDigitsModel(params.task.model)
    tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    output = str(tmp_path / "right.keras")
    export.export_run("multi_digits", str(tmp_path), ["right"], output)
    reloaded = keras.saving.load_model(output)
    x = multi_digits.multi_digits_arrays("test", 4).features
    np.testing.assert_allclose(reloaded(x)["right"], model.sub_tasks["right"](x), rtol=1e-5, atol=1e-6)
    with pytest.raises(train.UsageError, match="no checkpoint"):
        export.export_run("multi_digits", str(tmp_path / "empty"), ["right"], output)
    with pytest.raises(train.UsageError, match=r"Unknown tasks \['up'\]"):
        export.export_run("multi_digits", str(tmp_path), ["up"], output)


@pytest.mark.parametrize("architecture", [{"type": "hard_sharing"}, {"type": "mmoe", "num_experts": 2}])
def test_config_built_model_exports_and_reloads(tmp_path, architecture):
    from multitask.modeling import shared_encoder_model  # pylint: disable=import-outside-toplevel

    config = shared_encoder_model.SharedEncoderModelConfig(
        input_shape=(4,), encoder={"type": "mlp", "hidden_sizes": [8]}, architecture=architecture,
        heads={"a": {"type": "classification", "num_classes": 3}, "b": {"type": "regression"},
               "c": {"type": "binary"}},
    )
    model = shared_encoder_model.SharedEncoderModel(config)
    for variable in model.variables:  # Not the initial values: the reload must load these.
        variable.assign(tf.random.stateless_normal(variable.shape, seed=[1, len(variable.name)]))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    path = str(tmp_path / "ac.keras")
    export.export_tasks(model, ["c", "a"], path)
    reloaded = keras.saving.load_model(path)
    outputs = reloaded(x)
    assert set(outputs) == {"c", "a"}
    for task in ("c", "a"):
        np.testing.assert_allclose(outputs[task], model.sub_tasks[task](x), rtol=1e-5, atol=1e-6)
    trunk = len(model.encoder.weights)
    assert len(reloaded.weights) == trunk + len(model.heads["a"].weights) + len(model.heads["c"].weights)
