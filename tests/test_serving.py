"""Tests for the SavedModel export (multitask.serving).

The KerasHub test (test_keras_hub) loads one in a fresh process with
TensorFlow alone; these check signatures, names and values in-process.
"""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from multitask import base_model
from multitask import export
from multitask import serving
from multitask import train
from multitask.modeling import shared_encoder_model


def _stored_variables(path):
    return [name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]


def test_config_built_model_serves_each_task_and_all(tmp_path):
    config = shared_encoder_model.SharedEncoderModelConfig(
        input_shape=(4,), encoder={"type": "mlp", "hidden_sizes": [8]}, architecture={"type": "mmoe", "num_experts": 2},
        heads={"a": {"type": "classification", "num_classes": 3}, "b": {"type": "regression"}})
    model = shared_encoder_model.SharedEncoderModel(config)
    path = serving.export_saved_model(model, ["b", "a"], str(tmp_path / "served"))
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures) == ["a", "b", "serving_default"]
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    default = loaded.signatures["serving_default"](features=tf.constant(x))
    assert sorted(default) == ["a", "b"]
    for task in ("a", "b"):
        alone = loaded.signatures[task](features=tf.constant(x))
        assert list(alone) == [task]
        np.testing.assert_allclose(alone[task], model.sub_tasks[task](x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(default[task], alone[task], rtol=1e-6)
    assert len(_stored_variables(path)) == len(model.variables)


def test_names_of_dict_and_list_inputs_and_outputs(tmp_path):
    inputs = {"image": keras.Input((3,), name="image"), "meta": keras.Input((2,), dtype="int32", name="meta")}
    encoder = keras.Model(inputs, keras.layers.Dense(4)(keras.ops.concatenate(
        [inputs["image"], keras.ops.cast(inputs["meta"], "float32")], axis=-1)), name="encoder")
    representation = keras.Input((4,))
    head = keras.Model(representation, {"mean": keras.layers.Dense(1)(representation),
                                        "scale": keras.layers.Dense(1, activation="softplus")(representation)})
    model = base_model.EncoderHeadsModel(encoder, {"price": head})
    loaded = tf.saved_model.load(serving.export_saved_model(model, ["price"], str(tmp_path / "served")))
    signature = loaded.signatures["price"]
    assert sorted(signature.structured_input_signature[1]) == ["image", "meta"]
    assert signature.structured_input_signature[1]["meta"].dtype == tf.int32
    assert sorted(signature.structured_outputs) == ["price_mean", "price_scale"]
    assert serving.named_outputs({"t": [1, 2], "u": 3}) == {"t_0": 1, "t_1": 2, "u": 3}

    parts = [keras.Input((2,)), keras.Input((3,))]
    encoder = keras.Model(parts, keras.layers.Dense(4)(keras.ops.concatenate(parts, axis=-1)), name="list_encoder")
    model = base_model.EncoderHeadsModel(encoder, {"t": keras.layers.Dense(1)})
    x = [np.ones((2, 2), np.float32), np.ones((2, 3), np.float32)]
    loaded = tf.saved_model.load(serving.export_saved_model(model, ["t"], str(tmp_path / "list")))
    assert sorted(loaded.signatures["t"].structured_input_signature[1]) == ["features_0", "features_1"]
    served = loaded.signatures["t"](features_0=tf.constant(x[0]), features_1=tf.constant(x[1]))["t"]
    np.testing.assert_allclose(served, model.sub_tasks["t"](x), rtol=1e-6)


def test_bad_requests(tmp_path):
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)], name="encoder")
    model = base_model.EncoderHeadsModel(encoder, {"serving_default": keras.layers.Dense(1), "a": keras.layers.Dense(1)})
    with pytest.raises(ValueError, match="would shadow the signature of all tasks"):
        serving.export_saved_model(model, ["serving_default"], str(tmp_path / "x"))
    with pytest.raises(KeyError, match=r"Unknown tasks \['z'\]"):
        serving.export_saved_model(model, ["z"], str(tmp_path / "x"))
    with pytest.raises(train.UsageError, match=r"--output \(a .keras file\) or --saved_model \(a directory\)"):
        export.export_run("shapes", str(tmp_path), ["circle"])


def test_lookup_tables_are_saved_and_variables_once(tmp_path):
    """A StringLookup in the encoder: the SavedModel takes raw strings, with TensorFlow alone."""
    words = keras.Input((1,), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b", "c"])(words)
    encoder = keras.Model(words, keras.layers.Flatten()(keras.layers.Embedding(5, 3)(ids)), name="encoder")
    model = base_model.EncoderHeadsModel(encoder, {"t": keras.layers.Dense(1)})
    loaded = tf.saved_model.load(serving.export_saved_model(model, ["t"], str(tmp_path / "served")))
    text = np.array([["b"], ["zz"]], dtype=object)
    np.testing.assert_allclose(loaded.signatures["t"](features=tf.constant(text))["t"], model.sub_tasks["t"](text),
                               rtol=1e-6)
    assert len(_stored_variables(str(tmp_path / "served"))) == len(model.variables) == 3
