"""SharedEncoderModel: a multi-task model built from config blocks.

`MultiTaskConfig.model` set to a `SharedEncoderModelConfig` describes the
model with registered blocks, so most experiments need no model class:

    model:
      input_shape: [8]
      encoder: {type: mlp, hidden_sizes: [32, 16]}
      architecture: {type: mmoe, num_experts: 4}
      heads:
        species: {type: classification, num_classes: 3}
        mass: {type: regression}

The blocks come from `multitask.modeling.registry` (encoders, architectures,
heads); `plugins` names modules to import first, so a plugin's blocks need no
change to the core.

Config keys of a block. `encoder`, `architecture`, every head, and `heads`
itself are open configs (`multitask.open_config.OpenConfig`): a YAML file or
`--params_override` may set any key in them, also keys the default block
lacks (a plugin's own arguments), and setting another `type` replaces the
whole block. The keys are then checked against the registered builder's
signature in `validate()` (which the launcher runs before anything is
written): a misspelt key gets a ValueError naming the block's path and the
keys its type takes. The model's own fields (`input_shape`, ...) stay
strict, as everywhere else.

Single pass and rep_grad. The model is an `EncoderHeadsModel`: `encode`
runs the architecture's shared part once for all tasks, `task_outputs` a
task's branch and head. When the shared part gives several tensors (e.g. the
encoder output and the experts of MMoE), `encode` returns them packed into one
`[batch, features]` tensor (each flattened per example, then concatenated)
and each branch unpacks it, so gradient balancing with respect to the
representation (`rep_grad`) sees one tensor. Architectures that run shared
layers inside the branches (`mtan`) refuse rep_grad in `check_rep_grad`.
"""
import dataclasses
import importlib
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import keras
import tensorflow as tf

from official.modeling import hyperparams

from multitask import base_model
from multitask import model_factory
from multitask import open_config
from multitask.core import warm_start
from multitask.modeling import architectures  # Also registers the built-in architectures.
from multitask.modeling import encoders as encoders_lib  # Also registers the built-in encoders.
from multitask.modeling import heads  # pylint: disable=unused-import  (registers the built-in heads)
from multitask.modeling import registry

# Re-exported: model configs write `shared_encoder_model.block("mlp", ...)`.
OpenConfig = open_config.OpenConfig
block = open_config.block


@dataclasses.dataclass
class SharedEncoderModelConfig(hyperparams.Config):
    """A multi-task model of registered blocks (see the module docstring).

    In Python the blocks may be plain dicts:
    `SharedEncoderModelConfig(input_shape=(8,), encoder={"type": "mlp"},
    heads={"species": {"type": "classification", "num_classes": 3}})`.

    Attributes:
      input_shape: The per-example shape of the features (without the batch
        dimension), when they are one tensor.
      input_shapes: `{name: shape}` when the features are a dict (e.g. the
        modalities of a multimodal encoder). Set exactly one of the two.
      input_dtype: The dtype of the inputs.
      encoder: The encoder block, `{type, ...}` (see `encoders`).
      architecture: The architecture block, `{type, ...}` (see
        `architectures`); hard parameter sharing by default.
      heads: `{task_name: {type, ...}}`: one head block per task.
      plugins: Modules to import before the blocks are looked up (they
        register their own encoders, architectures or heads).
    """

    input_shape: Tuple[Optional[int], ...] = ()
    input_shapes: OpenConfig = dataclasses.field(default_factory=OpenConfig)
    input_dtype: str = "float32"
    encoder: OpenConfig = dataclasses.field(default_factory=lambda: block("mlp"))
    architecture: OpenConfig = dataclasses.field(default_factory=lambda: block("hard_sharing"))
    heads: OpenConfig = dataclasses.field(default_factory=OpenConfig)
    plugins: Tuple[str, ...] = ()

    def task_names(self) -> Tuple[str, ...]:
        """The task names, in the order of `heads`."""
        return tuple(self.heads.as_dict())

    def import_plugins(self) -> None:
        """Imports `plugins`.

        Raises:
          ValueError: A module cannot be imported.
        """
        for module in self.plugins:
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise ValueError(f"task.model.plugins: cannot import {module!r}: {error}") from error

    def validate(self):
        """Checks the inputs and every block (see `check`)."""
        super().validate()
        self.check()

    def check(self, check_heads: bool = True):
        """Imports the plugins, then checks the inputs and every block's type and keys.

        Args:
          check_heads: Also check the head blocks (not when the head layers
            are given in Python).

        Raises:
          ValueError: Both or neither of input_shape and input_shapes, no heads,
            an unknown block type, or a key its block does not take.
        """
        self.import_plugins()
        shapes = self.input_shapes.as_dict()
        if bool(self.input_shape) == bool(shapes):
            raise ValueError("task.model: set exactly one of input_shape (one feature tensor) and "
                             "input_shapes ({name: shape} for dict features).")
        for name, shape in ([("input_shape", self.input_shape)] if self.input_shape else
                            [(f"input_shapes.{k}", v) for k, v in shapes.items()]):
            if not isinstance(shape, (list, tuple)) or any(
                    d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= 0) for d in shape):
                raise ValueError(f"task.model.{name} is {shape!r}; it must be a list of positive sizes (or null).")
        registry.ENCODERS.check(self.encoder, "task.model.encoder")
        registry.ARCHITECTURES.check(self.architecture, "task.model.architecture",
                                     reserved=architectures.RESERVED_ARGUMENTS)
        if not check_heads:
            return
        heads = self.heads.as_dict()
        if not heads:
            raise ValueError("task.model.heads is empty; give each task a head block {task_name: {type: ...}}.")
        for task, config in heads.items():
            if not isinstance(config, dict):
                raise ValueError(f"task.model.heads.{task} is {config!r}; it must be a block {{type: ...}}.")
            registry.HEADS.check(config, f"task.model.heads.{task}", reserved=("name",))


def model_inputs(config: SharedEncoderModelConfig):
    """The Keras input structure `config` describes: one `keras.Input`, or a dict of them."""
    shapes = config.input_shapes.as_dict()
    if shapes:
        return {name: keras.Input(tuple(shape), dtype=config.input_dtype, name=name) for name, shape in shapes.items()}
    return keras.Input(tuple(config.input_shape), dtype=config.input_dtype)


EncoderSpec = Union[Mapping, keras.layers.Layer, Callable[[], keras.layers.Layer]]


def encoder_factory(spec: EncoderSpec) -> Callable[[], keras.layers.Layer]:
    """Returns a function that makes a new encoder on every call.

    Args:
      spec: An encoder block config (built through `registry.ENCODERS`), a
        function returning a keras layer, or a keras layer (returned by the
        first call, then cloned with fresh weights by `encoders.clone_layer`).
    """
    if isinstance(spec, keras.layers.Layer):
        calls = []

        def from_layer():
            calls.append(None)
            return spec if len(calls) == 1 else encoders_lib.clone_layer(spec)

        return from_layer
    if callable(spec) and not isinstance(spec, (Mapping, hyperparams.ParamsDict)):
        return spec
    return lambda: registry.ENCODERS.build(spec)


class _PackSpec:
    """How a structure of tensors is packed into one `[batch, features]` tensor (not tracked by Keras)."""

    def __init__(self, template):
        self.template = tf.nest.map_structure(lambda _: None, template)
        self.shapes = [tuple(p.shape[1:]) for p in tf.nest.flatten(template)]
        if self.packed and any(d is None for shape in self.shapes for d in shape):
            raise ValueError(f"The architecture's shared outputs have shapes {self.shapes}; packing them into one "
                             "representation needs every size but the batch's known.")

    @property
    def packed(self) -> bool:
        return len(self.shapes) > 1

    def pack(self, structure):
        parts = tf.nest.flatten(structure)
        if not self.packed:
            return parts[0]
        batch = tf.shape(parts[0])[0]
        return tf.concat([tf.reshape(p, [batch, -1]) for p in parts], axis=-1)

    def unpack(self, representation):
        if not self.packed:
            return representation
        sizes = [int(tf.TensorShape(shape).num_elements()) for shape in self.shapes]
        pieces = tf.split(representation, sizes, axis=-1)
        return tf.nest.pack_sequence_as(
            self.template, [tf.reshape(p, [-1, *shape]) for p, shape in zip(pieces, self.shapes)])


class SharedTrunk(keras.layers.Layer):
    """The architecture's shared part; returns its output packed into one tensor when it is several."""

    def __init__(self, shared_part: keras.layers.Layer, inputs, **kwargs):
        """Wraps and builds `shared_part` on the Keras `inputs`."""
        super().__init__(**kwargs)
        self.shared_part = shared_part
        self.inputs = inputs
        self.spec = _PackSpec(shared_part(inputs))

    def call(self, inputs, training=None):
        return self.spec.pack(self.shared_part(inputs, training=training))


class TaskTower(keras.layers.Layer):
    """A task's branch of the architecture, then its head, on the packed shared output."""

    def __init__(self, spec: _PackSpec, branch: keras.layers.Layer, head: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self._spec = spec
        self.branch = branch
        self.head = head

    def call(self, representation, training=None):
        features = self.branch(self._spec.unpack(representation), training=training)
        return self.head(features, training=training)


@model_factory.register_model_cls(SharedEncoderModelConfig)
class SharedEncoderModel(base_model.EncoderHeadsModel):
    """An encoder, a multi-task architecture over it and one head per task, from a config.

    `sub_tasks[t]` is a keras.Model (trunk, then task t's branch and head);
    `encode` / `task_outputs` split it for the joint trainer's single pass.
    `checkpoint_items` is `{"encoder": encoder}` (for cross_stitch, one
    `encoder_<task>` per column; `initialize()` warm-starts every column from
    a single-task checkpoint's "encoder", as Misra et al. initialise them).
    Built on creation, from the config's input shapes.

    Attributes:
      architecture: The `architectures.Architecture`.
      encoder: (as in `EncoderHeadsModel`) the whole shared part, a
        `SharedTrunk`; the encoder objects themselves are `encoders`.
      heads: `{task: TaskTower}`: the task's branch, then its head (`.head`).
    """

    def __init__(self, config: SharedEncoderModelConfig, init_checkpoint: str = "",
                 encoder: Optional[EncoderSpec] = None, heads: Optional[Mapping[str, keras.layers.Layer]] = None,
                 **kwargs):
        """Builds the model.

        Args:
          config: The blocks and the input shapes; validated here.
          init_checkpoint: A checkpoint `initialize()` warm-starts the encoder from.
          encoder: Instead of `config.encoder`: a keras layer (e.g. a user
            model; see `encoder_factory`) or a function returning one.
          heads: Instead of `config.heads`: `{task_name: keras layer}`.
          **kwargs: Passed to `tf.Module`.

        Raises:
          ValueError: An invalid config (see `SharedEncoderModelConfig.validate`),
            or a head that is not a keras layer.
        """
        if heads is not None and not heads:
            raise ValueError("heads is empty; give each task a head layer.")
        config.check(check_heads=heads is None)
        # The config rebuilds this model only when it names every block (see `multitask.export`).
        self.config = config if encoder is None and heads is None else None
        task_names = tuple(heads) if heads is not None else config.task_names()
        inputs = model_inputs(config)
        self.architecture = registry.ARCHITECTURES.build(
            config.architecture, encoder_factory=encoder_factory(encoder if encoder is not None else config.encoder),
            task_names=task_names, inputs=inputs)
        if heads is None:
            heads = {name: registry.HEADS.build(block_config, name=name)
                     for name, block_config in config.heads.as_dict().items()}
        for name, head in heads.items():
            if not isinstance(head, keras.layers.Layer):
                raise ValueError(f"The head of task {name!r} is a {type(head).__name__}, not a keras layer.")
        trunk = SharedTrunk(self.architecture.shared_part(), inputs, name="trunk")
        towers = {name: TaskTower(trunk.spec, self.architecture.branch_part(name), head, name=f"{name}_tower")
                  for name, head in heads.items()}
        super().__init__(trunk, towers, init_checkpoint=init_checkpoint, **kwargs)
        self.build()

    @property
    def encoders(self):
        """The encoder objects: one, or one column per task (cross_stitch)."""
        return self.architecture.encoders

    @property
    def checkpoint_items(self) -> Dict[str, keras.layers.Layer]:
        encoders = self.encoders
        if len(encoders) == 1:
            return {"encoder": encoders[0]}
        return {f"encoder_{name}": column for name, column in zip(self.architecture.task_names, encoders)}

    def initialize(self):
        """Warm-starts the encoder (every column) from `init_checkpoint`'s "encoder", if set."""
        if self._init_checkpoint:
            for encoder in self.encoders:
                warm_start.restore_items({"encoder": encoder}, self._init_checkpoint)

    def check_rep_grad(self):
        """Raises a ValueError when the architecture runs shared layers in the task branches."""
        if not self.architecture.supports_rep_grad:
            raise ValueError(
                f"trainer.rep_grad: architecture {type(self.architecture).__name__} applies layers shared by "
                "all tasks inside each task's branch, which gradients with respect to the shared "
                "representation do not reach; set rep_grad to False."
            )

