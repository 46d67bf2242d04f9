"""MultiTaskBaseModel: one Keras sub-model per task over shared layers.

Subclasses create the shared layers once, pass them into each task's
sub-model through its constructor, and return the sub-models from
`_instantiate_sub_tasks`. A layer passed into several sub-models is one set of
variables, updated by every task that uses it.

Any part of the model can be frozen and unfrozen between `train()` calls
(`freeze` / `unfreeze`); the trainers pick the change up at their next loop.
"""
import abc
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from multitask import model_inputs
from multitask.core import warm_start


def unique_variables(models) -> List[tf.Variable]:
    """Returns the variables of `models`' lists, each once, in first-seen order.

    Args:
      models: An iterable of variable lists.
    """
    seen, result = set(), []
    for variables in models:
        for variable in variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                result.append(variable)
    return result


class _FrozenLayers(dict):
    """`{id(layer): (layer, its variables that freezing made non-trainable)}`.

    A dict subclass, so `tf.Module` neither wraps nor tracks it: freezing does
    not change the checkpoint's structure.
    """


class MultiTaskBaseModel(tf.Module, metaclass=abc.ABCMeta):
    """Holds one `keras.Model` per task, sharing layers between them."""

    def __init__(self, init_checkpoint: str = "", **kwargs):
        """Creates the sub-models.

        Args:
          init_checkpoint: Optional checkpoint (file or directory) that
            `initialize()` restores `checkpoint_items` from.
          **kwargs: Passed to `tf.Module` (e.g. `name`).
        """
        super().__init__(**kwargs)
        self._init_checkpoint = init_checkpoint
        self._frozen = _FrozenLayers()
        self._sub_tasks = self._instantiate_sub_tasks()

    @abc.abstractmethod
    def _instantiate_sub_tasks(self) -> Dict[str, keras.Model]:
        """Returns `{task_name: keras.Model}`, sharing layers between them."""

    @property
    def sub_tasks(self) -> Mapping[str, keras.Model]:
        """The `{task_name: keras.Model}` map."""
        return self._sub_tasks

    @property
    def trainable_variables(self) -> List[tf.Variable]:
        """Trainable variables of all sub-models, shared ones listed once."""
        return unique_variables(m.trainable_variables for m in self._sub_tasks.values())

    @property
    def variables(self) -> List[tf.Variable]:
        """All variables of all sub-models, shared ones listed once."""
        return unique_variables(m.variables for m in self._sub_tasks.values())

    @property
    def optimizer_variables(self) -> List[tf.Variable]:
        """The trainable variables as if nothing were frozen.

        The trainers build the optimizer on these, so a part frozen before the
        trainer exists can be unfrozen later, and the optimizer's variables
        (and checkpoint) do not depend on what is frozen. Without frozen parts
        this is `trainable_variables`, in the same order.
        """
        frozen = {id(v) for _, variables in self._frozen.values() for v in variables}
        return [v for v in self.variables if v.trainable or id(v) in frozen]

    @property
    def parts(self) -> Dict[str, keras.layers.Layer]:
        """The named parts `freeze` and `unfreeze` accept; none by default.

        Subclasses return e.g. `{"encoder": ..., <task>: <task's head>}`.
        """
        return {}

    def _resolve_part(self, part) -> keras.layers.Layer:
        if isinstance(part, keras.layers.Layer):
            owned = {id(v) for v in self.variables}
            if not part.variables or any(id(v) not in owned for v in part.variables):
                raise ValueError(
                    f"Layer {part.name!r} is not a built part of this {type(self).__name__}: "
                    "freeze takes a layer whose variables belong to the model."
                )
            return part
        parts = self.parts
        if part not in parts:
            raise KeyError(
                f"{type(self).__name__} has no part {part!r}; parts: {', '.join(parts) or 'none'} "
                "(or pass one of its keras layers)."
            )
        return parts[part]

    def freeze(self, part) -> None:
        """Stops training `part`: its variables get no updates until `unfreeze`.

        The part's layer gets `trainable = False` (Keras semantics: its
        variables leave `trainable_variables`, so no optimizer update, momentum
        or weight decay touches them; a frozen BatchNormalization runs in
        inference mode). Call it between `train()` calls, e.g. from user code or
        an orbit Controller action; the trainer retraces its loop once at its
        next `train()`.

        Args:
          part: A name from `parts` (for an `EncoderHeadsModel`: "encoder" or a
            task name, meaning that task's head) or any built keras layer of
            the model.

        Raises:
          KeyError: An unknown part name (the message lists `parts`).
          ValueError: A layer that is not part of the model.
        """
        layer = self._resolve_part(part)
        if id(layer) not in self._frozen:
            self._frozen[id(layer)] = (layer, list(layer.trainable_variables))
        layer.trainable = False

    def unfreeze(self, part) -> None:
        """Resumes training a part `freeze` froze; the optimizer state is kept.

        Args:
          part: As for `freeze`. Setting `trainable = True` on a layer unfreezes
            its sub-layers too (Keras semantics).

        Raises:
          KeyError: An unknown part name.
          ValueError: A layer that is not part of the model.
        """
        layer = self._resolve_part(part)
        self._frozen.pop(id(layer), None)
        layer.trainable = True

    @property
    def checkpoint_items(self) -> Dict[str, tf.__internal__.tracking.Trackable]:
        """Objects `initialize()` restores from `init_checkpoint`, by name.

        Subclasses return e.g. `{"encoder": self.encoder}` to warm-start the
        shared layers from a checkpoint that holds them under that name.
        """
        return {}

    def build(self, features: Optional[Mapping[str, Any]] = None):
        """Creates every variable by calling each unbuilt sub-model once.

        A sub-model is called on its own Keras `inputs` (functional models, or
        a subclass that sets `self.inputs`), else on Keras inputs shaped like
        `features[task]`, the spec of its task's features
        (`model_inputs.features_spec` of its data). The trainers and the
        evaluator pass them, so plain subclassed sub-models need neither.

        Args:
          features: `{task: spec structure of the task's features}`, for the
            sub-models without Keras inputs.

        Raises:
          ValueError: A sub-model is not built and has neither `inputs` nor
            `features`, or its first call fails.
        """
        features = features or {}
        for name, model in self._sub_tasks.items():
            model_inputs.build_model(model, f"Sub-model of task {name!r}", features.get(name))

    def initialize(self):
        """Warm-starts `checkpoint_items` from `init_checkpoint`, if both are set.

        Used as the checkpoint manager's `init_fn`: it runs only when the run's
        model_dir has no checkpoint of its own.

        Raises:
          ValueError: The checkpoint is missing or lacks the items' variables.
        """
        if self._init_checkpoint and self.checkpoint_items:
            warm_start.restore_items(self.checkpoint_items, self._init_checkpoint)


class EncoderHead(keras.Model):
    """A task's sub-model: an encoder (possibly shared) followed by the task's head."""

    def __init__(self, encoder: keras.layers.Layer, head: keras.layers.Layer, **kwargs):
        """Composes the sub-model.

        Args:
          encoder: The encoder; pass one object to several sub-models to share it.
          head: This task's head, applied to the encoder's output.
          **kwargs: Passed to `keras.Model` (e.g. `name`).
        """
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head
        # The encoder's input structure as it is (a dict for a KerasHub backbone).
        inputs = model_inputs.input_structure(encoder)
        if inputs is not None:
            self.inputs = inputs
        if encoder.built and head.built:
            self.built = True

    def call(self, inputs, training=None):
        return self.head(self.encoder(inputs, training=training), training=training)

    @property
    def checkpoint_items(self) -> Dict[str, keras.layers.Layer]:
        """`{"encoder": encoder}`: a single-task checkpoint then warm-starts an `EncoderHeadsModel`."""
        return {"encoder": self.encoder}


class EncoderHeadsModel(MultiTaskBaseModel):
    """Tasks that share one encoder and each have a head of their own.

    Besides one sub-model per task (`EncoderHead`), it exposes the split
    `encode` / `task_outputs`, so that on a shared input the joint trainer runs
    the encoder once per step for all tasks, and gradient-balancing methods
    can take gradients with respect to the shared representation.
    `checkpoint_items` is `{"encoder": encoder}`.
    """

    def __init__(self, encoder: keras.layers.Layer, heads: Mapping[str, keras.layers.Layer],
                 init_checkpoint: str = "", **kwargs):
        """Creates the model.

        Args:
          encoder: The shared encoder.
          heads: `{task_name: head}`.
          init_checkpoint: Optional checkpoint whose "encoder" `initialize()` restores.
          **kwargs: Passed to `tf.Module`.
        """
        self.encoder = encoder
        self.heads = dict(heads)
        super().__init__(init_checkpoint=init_checkpoint, **kwargs)

    def _instantiate_sub_tasks(self) -> Dict[str, keras.Model]:
        return {name: EncoderHead(self.encoder, head, name=name) for name, head in self.heads.items()}

    @property
    def checkpoint_items(self) -> Dict[str, keras.layers.Layer]:
        return {"encoder": self.encoder}

    @property
    def parts(self) -> Dict[str, keras.layers.Layer]:
        """`{"encoder": encoder, <task>: <task's head>}`.

        Raises:
          ValueError: A task is named "encoder", which would be ambiguous.
        """
        if "encoder" in self.heads:
            raise ValueError('A task named "encoder" makes the part name ambiguous; pass the layer itself.')
        return {"encoder": self.encoder, **self.heads}

    def encode(self, features, training: bool = False):
        """The shared representation of `features`."""
        return self.encoder(features, training=training)

    def task_outputs(self, task_name: str, representation, training: bool = False):
        """Task `task_name`'s outputs from the shared representation."""
        return self.heads[task_name](representation, training=training)

    def task_layer_losses(self, task_name: str) -> List[tf.Tensor]:
        """The layer losses of the last `encode` and `task_outputs(task_name)` calls."""
        return list(self.encoder.losses) + list(self.heads[task_name].losses)

    def check_rep_grad(self) -> None:
        """Raises a ValueError if gradients with respect to `encode`'s output cannot be balanced.

        Here every shared variable is in the encoder, whose output must be one
        tensor (a functional encoder's output structure is checked);
        subclasses that apply shared layers after `encode` override it.
        """
        try:
            output = self.encoder.output if model_inputs.input_structure(self.encoder) is not None else None
        except (AttributeError, ValueError):  # A layer Keras has not called yet.
            output = None
        if isinstance(output, (dict, list, tuple)):
            raise ValueError(
                f"trainer.rep_grad balances gradients with respect to one representation tensor; the encoder "
                f"{self.encoder.name!r} returns a {type(output).__name__}. Set rep_grad to False."
            )


def encodes_once(model) -> bool:
    """Whether `model` is a `MultiTaskBaseModel` with the split `encode(features, training)` /
    `task_outputs(task_name, representation, training)`.

    On one dataset shared by every task, the joint trainer then runs `encode`
    once per step for all tasks (the single pass), and `rep_grad` can
    balance gradients with respect to its output. `EncoderHeadsModel` has
    the split; any other sub-class may define the two methods.
    """
    return isinstance(model, MultiTaskBaseModel) and all(
        callable(getattr(model, method, None)) for method in ("encode", "task_outputs"))


@tf.autograph.experimental.do_not_convert
def single_pass_layer_losses(model, task_name: str) -> List[tf.Tensor]:
    """Task `task_name`'s layer losses after `encode` and `task_outputs(task_name)`.

    The model's own `task_layer_losses(task_name)` where it has one, else the
    losses its sub-model's layers hold from those calls (a Keras layer keeps
    the losses of its last call), the same as a call of the sub-model adds
    when it is built from the same layers.
    """
    if callable(getattr(model, "task_layer_losses", None)):
        return list(model.task_layer_losses(task_name))
    return list(task_model(model, task_name).losses)


@tf.autograph.experimental.do_not_convert
def task_model(model, task_name: str) -> keras.Model:
    """Returns the model that serves `task_name`.

    Args:
      model: A `MultiTaskBaseModel` or one `keras.Model` serving every task.
      task_name: The task.

    Raises:
      KeyError: `model` is a MultiTaskBaseModel without a sub-model for the task.
    """
    if isinstance(model, MultiTaskBaseModel):
        if task_name not in model.sub_tasks:
            raise KeyError(
                f"Task {task_name!r} has no sub-model in {type(model).__name__}; "
                f"sub_tasks: {', '.join(model.sub_tasks)}."
            )
        return model.sub_tasks[task_name]
    return model


def check_tasks_in_model(model, task_names) -> None:
    """Raises a KeyError naming the first task that `model` does not serve."""
    for name in task_names:
        task_model(model, name)


def optimizer_variables(model) -> List[tf.Variable]:
    """The variables the trainers build the optimizer on (frozen parts included).

    Args:
      model: A `MultiTaskBaseModel` (its `optimizer_variables`) or one keras.Model
        (its `trainable_variables`).
    """
    if isinstance(model, MultiTaskBaseModel):
        return model.optimizer_variables
    return list(model.trainable_variables)


def ensure_built(model, task_names: Sequence[str] = (),
                 features_of: Optional[Callable[[str], Any]] = None) -> None:
    """Creates all variables of `model` before the optimizer is built.

    Args:
      model: A `MultiTaskBaseModel` or one keras.Model for all tasks.
      task_names: The tasks whose data may build it (with one keras.Model,
        the first task's).
      features_of: `fn(task) -> features spec` (`model_inputs.features_spec`
        of the task's data); called only for the tasks of `task_names` whose
        sub-model is unbuilt and has no Keras inputs.

    Raises:
      ValueError: A model that cannot be built (see `MultiTaskBaseModel.build`).
    """
    if isinstance(model, MultiTaskBaseModel):
        needed = [name for name in task_names if model_inputs.needs_data(model.sub_tasks[name])]
        model.build({name: features_of(name) for name in needed} if features_of else None)
    else:
        features = features_of(task_names[0]) if features_of and task_names and model_inputs.needs_data(model) else None
        model_inputs.build_model(model, "The model", features)
