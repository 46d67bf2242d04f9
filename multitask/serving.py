"""A TensorFlow SavedModel that serves some tasks of a multi-task model.

`export_saved_model(model, ["left", "right"], path)` writes a SavedModel that
TensorFlow Serving, TFLite converters and clients in other languages read
with TensorFlow alone (no Keras, no multitask, no custom layers):

- one signature per exported task, named after the task, and
  `serving_default`, which returns every exported task;
- named inputs: the keys of a dict-input encoder (e.g. a KerasHub
  backbone's `token_ids`, `segment_ids`, `padding_mask`), `features` for a
  single tensor, `features_<i>` for a list;
- named outputs: the task's name, or `<task>_<key>` for each entry of a head
  that returns a dict (`<task>_<i>` for a list);
- every variable stored once, whatever the number of signatures: the shared
  encoder is not copied per task;
- lookup tables (e.g. a `StringLookup`'s) saved with it, so a model that
  maps raw strings serves them.

It is written with Keras' `keras.export.ExportArchive`, over the same
functional subset models as the `.keras` export (`export.subset_model`).
"""
from typing import Dict, Sequence

import keras
import tensorflow as tf

from multitask import base_model
from multitask import export
from multitask import model_inputs

DEFAULT_SIGNATURE = "serving_default"


def _spec(tensor, name: str) -> tf.TensorSpec:
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    return tf.TensorSpec((None, *tuple(tensor.shape)[1:]), dtype, name=name)


def input_signature(structure):
    """Named `tf.TensorSpec`s (batch dimension free) for an input structure of KerasTensors or specs."""
    if isinstance(structure, dict):
        return {key: _spec(value, key) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_spec(value, f"features_{i}") for i, value in enumerate(structure)]
    return _spec(structure, "features")


def named_outputs(outputs: Dict[str, object], prefix: str = "") -> Dict[str, tf.Tensor]:
    """Flattens `{task: outputs}` into `{name: tensor}` (`task`, `task_key`, `task_<i>`)."""
    named = {}
    for key, value in outputs.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            named.update(named_outputs(value, f"{name}_"))
        elif isinstance(value, (list, tuple)):
            named.update(named_outputs({str(i): v for i, v in enumerate(value)}, f"{name}_"))
        else:
            named[name] = value
    return named


def _endpoint(subset: keras.Model):
    """The serving function of `subset`: features in, named outputs out."""
    return lambda features: named_outputs(subset(features))


def export_saved_model(model: base_model.EncoderHeadsModel, task_names: Sequence[str], path: str,
                       inputs=None) -> str:
    """Writes a SavedModel serving `task_names` to the directory `path`.

    Args:
      model: The trained `EncoderHeadsModel` (or config-built model).
      task_names: The tasks to serve.
      path: The SavedModel directory (any filesystem TensorFlow has).
      inputs: As for `export.subset_model`: the input structure, by default
        the encoder's own Keras inputs.

    Returns:
      `path`.

    Raises:
      KeyError: A task the model does not serve.
      ValueError: As for `export.subset_model`; a task named "serving_default";
        or no input structure.
    """
    subset = export.subset_model(model, task_names, inputs)
    if DEFAULT_SIGNATURE in task_names:
        raise ValueError(f"A task named {DEFAULT_SIGNATURE!r} would shadow the signature of all tasks.")
    structure = inputs if inputs is not None else model_inputs.input_structure(model.encoder)
    signature = [input_signature(structure)]
    archive = keras.export.ExportArchive()
    # The endpoints' variables are saved once each, as the functions capture
    # them; tracking the Keras model itself would save a second copy of every
    # variable. A plain tf.Module over it adds no variables, only lets the
    # archive find lookup tables (e.g. a StringLookup's) to save with them.
    tables = tf.Module(name="lookup_tables")
    tables.model = subset
    archive.track(tables)
    archive.add_endpoint(DEFAULT_SIGNATURE, _endpoint(subset), input_signature=signature)
    for task in task_names:
        archive.add_endpoint(task, _endpoint(export.subset_model(model, [task], inputs, name=task)),
                             input_signature=signature)
    archive.write_out(path, verbose=False)
    return path
