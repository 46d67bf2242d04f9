"""`Architecture`: the shared part and the per-task branches of a multi-task network.

A builder registered with `registry.register_architecture(name)` is called as
`builder(encoder_factory=..., task_names=..., inputs=..., **config)` and
returns an `Architecture` (see the `architectures` package docstring).
"""
import abc
from typing import Callable, List, Sequence

import keras

from multitask.modeling import tracking

EncoderFactory = Callable[[], keras.layers.Layer]
# Arguments the model passes to every architecture builder; not config keys.
RESERVED_ARGUMENTS = ("encoder_factory", "task_names", "inputs")


class Part(tracking.CheckpointableLayer):
    """A keras layer running one part of an architecture; it tracks exactly `layers`."""

    def __init__(self, fn: Callable, layers: Sequence[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self._fn = fn
        self.parts = list(layers)

    def build(self, input_shape):
        # The parts build on the first call, which the model makes on its Keras inputs.
        self.built = True

    def call(self, inputs, training=None):
        return self._fn(inputs, training=training)


class Architecture(abc.ABC):
    """The shared part and the per-task branches of a multi-task network.

    Subclasses create their layers in `__init__` and implement `shared`,
    `branch`, `shared_layers` and `branch_layers`.

    Attributes:
      supports_rep_grad: Whether every variable used by several tasks lies in
        the shared part (so gradients with respect to the shared output reach
        all of them).
    """

    supports_rep_grad = True

    def __init__(self, task_names: Sequence[str]):
        if not task_names:
            raise ValueError("An architecture needs at least one task name.")
        self.task_names = tuple(task_names)
        self._shared_part = None
        self._branch_parts = {}

    @property
    def encoders(self) -> List[keras.layers.Layer]:
        """The encoder objects (one, or one column per task)."""
        return [self.encoder]

    @abc.abstractmethod
    def shared_layers(self) -> List[keras.layers.Layer]:
        """The layers the shared part uses."""

    @abc.abstractmethod
    def branch_layers(self, task: str) -> List[keras.layers.Layer]:
        """The layers task `task`'s branch uses."""

    @abc.abstractmethod
    def shared(self, features, training=None):
        """The shared output: a tensor, or a nest (dict, tuple) of tensors."""

    @abc.abstractmethod
    def branch(self, task: str, shared, training=None):
        """Task `task`'s representation from the shared output."""

    def shared_part(self) -> Part:
        """The shared part as one keras layer (the same object on every call)."""
        if self._shared_part is None:
            self._shared_part = Part(self.shared, self.shared_layers(), name="shared")
        return self._shared_part

    def branch_part(self, task: str) -> Part:
        """Task `task`'s branch as one keras layer (the same object on every call)."""
        if task not in self._branch_parts:
            if task not in self.task_names:
                raise KeyError(f"Unknown task {task!r}; tasks: {', '.join(self.task_names)}.")
            self._branch_parts[task] = Part(
                lambda shared, training=None: self.branch(task, shared, training=training),
                self.branch_layers(task), name=f"{task}_branch")
        return self._branch_parts[task]
