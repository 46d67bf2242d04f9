"""Input structures of models and data, and building a model from them.

Keras 3 creates a model's variables on its first call, and the trainers must
build the optimizer on every variable before the first traced step. A model
is built by one symbolic call on `keras.Input`s: its own `inputs` where it
has them (functional models), else Keras inputs shaped like its task's data
(`features_spec` of the dataset's `element_spec`; no batch is read). This is
how a plain subclassed `keras.Model`, unbuilt and without `inputs`, trains.

Input structures are kept as they are: a dict of named inputs (e.g. a
KerasHub backbone's `token_ids`, `padding_mask`, ...), a list, or one tensor.
"""
from typing import Any, Optional

import keras
import tensorflow as tf

from multitask import errors
from multitask.core import base_task


def fresh_inputs(structure, name: Optional[str] = None):
    """New `keras.Input`s shaped like `structure`'s KerasTensors or TensorSpecs (batch dim free).

    Args:
      structure: A KerasTensor or `tf.TensorSpec`, or a dict, list or tuple
        of them; dict keys name the inputs.
      name: The input's name (for a single tensor).

    Raises:
      ValueError: A leaf without a batch dimension.
    """
    if isinstance(structure, dict):
        return {key: fresh_inputs(value, key) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(fresh_inputs(value) for value in structure)
    shape = getattr(structure, "shape", None)
    if shape is None or len(shape) == 0:
        raise ValueError(
            f"inputs: expected keras.Input tensors or tf.TensorSpecs with a batch dimension, got {structure!r}."
        )
    dtype = structure.dtype.name if isinstance(structure.dtype, tf.dtypes.DType) else structure.dtype
    return keras.Input(shape=tuple(shape[1:]), dtype=dtype, name=name,
                       sparse=isinstance(structure, tf.SparseTensorSpec))


def input_structure(layer: keras.layers.Layer):
    """The Keras inputs of a model, in the structure it is called with, or None.

    A functional model built on a dict of inputs gives that dict (its
    `inputs` attribute is a flat list), one built on a single input gives
    the tensor; a subclassed model gives what it set as `self.inputs`.
    None for a layer without Keras inputs (e.g. a plain subclassed model).
    """
    try:
        inputs = getattr(layer, "inputs", None)
    except (AttributeError, ValueError):  # Keras raises these for a never-called layer.
        return None
    if inputs is None or (isinstance(inputs, (list, tuple, dict)) and not inputs):
        return None
    if isinstance(inputs, list):
        try:
            structure = layer.input  # A functional model's constructor inputs, as given.
        except (AttributeError, ValueError):
            structure = None
        if structure is not None and {id(t) for t in tf.nest.flatten(structure)} == {id(t) for t in inputs}:
            return structure
        return inputs[0] if len(inputs) == 1 else inputs
    return inputs


def _one_replica(spec):
    """The spec of one replica's value, from a distributed dataset's `PerReplicaSpec`."""
    value_specs = getattr(spec, "_value_specs", None)
    return value_specs[0] if value_specs else spec


def element_spec(source):
    """The `element_spec` of a train or evaluation source, without reading a batch.

    Args:
      source: A `tf.data.Dataset`, a distributed dataset, or a function
        `fn(input_context=...)` returning a dataset (called once, for one
        input pipeline of the current strategy's replicas).
    """
    if isinstance(source, tf.data.Dataset):
        return source.element_spec
    spec = getattr(source, "element_spec", None)
    if spec is not None:
        return tf.nest.map_structure(_one_replica, spec)
    if callable(source):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return source(input_context=tf.distribute.InputContext(num_replicas_in_sync=replicas)).element_spec
    raise ValueError(f"Cannot read the element_spec of a {type(source).__name__}.")


def features_spec(source):
    """The features' spec structure of a source of `(features, labels)` batches."""
    return base_task.split_inputs(element_spec(source))[0]


def needs_data(model: keras.Model) -> bool:
    """Whether building `model` needs its data: it is unbuilt and has no Keras inputs."""
    return not (model.built and model.variables) and input_structure(model) is None


def build_model(model: keras.Model, what: str, features: Any = None) -> None:
    """Creates `model`'s variables by one symbolic call, unless it is built already.

    Args:
      model: A keras.Model (or layer).
      what: How messages name the model, e.g. "Sub-model of task 'left'".
      features: The spec structure of the model's features (`features_spec`
        of its data), used when the model has no Keras inputs of its own.

    Raises:
      ValueError: No inputs and no `features`, or the first call fails (one
        line naming the model, the inputs and the error).
    """
    if model.built and model.variables:
        return
    inputs = input_structure(model)
    if inputs is None:
        if features is None:
            raise ValueError(
                f"{what} ({type(model).__name__}) is not built and has no `inputs`, and no data was given "
                "to build it from: pass its task's data, make it a functional model, or call it once first."
            )
        inputs = fresh_inputs(features)
    try:
        model(inputs)
    except Exception as error:  # pylint: disable=broad-except  (user code: any error)
        shapes = tf.nest.map_structure(lambda t: f"{keras.backend.standardize_dtype(t.dtype)}{list(t.shape)}",
                                       inputs)
        raise ValueError(
            f"{what} ({type(model).__name__}) failed on its first call, on inputs {shapes}: "
            f"{errors.one_line(error)}; fix its call() or build()."
        ) from error


def output_head(encoder: keras.layers.Layer, key: str, head: keras.layers.Layer, name: str) -> keras.Model:
    """A head that reads one entry of a dict-output encoder, as a functional Keras model.

    A KerasHub backbone returns e.g. `{"sequence_output", "pooled_output"}`;
    `output_head(backbone, "pooled_output", keras.layers.Dense(4), "topic")`
    takes the whole dict and applies `head` to its `pooled_output`. Being a
    functional model of `head`, it saves and reloads with Keras alone.

    Args:
      encoder: A functional encoder whose output is a dict.
      key: The entry the head reads.
      head: The layer applied to it.
      name: The head model's name.

    Raises:
      ValueError: The encoder's output is not a dict with `key`.
    """
    outputs = getattr(encoder, "output", None)
    if not isinstance(outputs, dict) or key not in outputs:
        keys = ", ".join(outputs) if isinstance(outputs, dict) else "none (not a dict)"
        raise ValueError(f"output_head: the encoder's outputs have no {key!r}; they have: {keys}.")
    representation = fresh_inputs(outputs)
    return keras.Model(representation, head(representation[key]), name=name)
