"""Registries of encoders, heads and architectures, keyed by a config `type`.

A plugin adds a building block without touching the core:

    @registry.register_encoder("my_encoder")
    class MyEncoder(keras.layers.Layer):
        def __init__(self, units=8, **kwargs): ...

and a model config then names it: `encoder: {type: my_encoder, units: 16}`.
"""
from typing import Any, Callable, Dict, Mapping


class Registry:
    """Named builders of one kind of building block."""

    def __init__(self, kind: str):
        """Creates an empty registry; `kind` names the block in error messages."""
        self._kind = kind
        self._builders: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable:
        """Returns a decorator that registers a class or factory under `name`.

        Raises:
          ValueError: `name` is already registered.
        """
        def decorator(builder):
            if name in self._builders:
                raise ValueError(f"{self._kind} {name!r} is already registered (by {self._builders[name]!r}).")
            self._builders[name] = builder
            return builder
        return decorator

    @property
    def names(self):
        """The registered names, sorted."""
        return sorted(self._builders)

    def lookup(self, name: str) -> Callable[..., Any]:
        """Returns the builder registered under `name`.

        Raises:
          ValueError: `name` is not registered; the message lists the registered names.
        """
        if name not in self._builders:
            raise ValueError(
                f"Unknown {self._kind} type {name!r}; registered: {', '.join(self.names) or 'none'}."
            )
        return self._builders[name]

    def build(self, config: Mapping[str, Any], **kwargs):
        """Builds the block `config` describes: `config["type"]` with the other keys as arguments.

        Args:
          config: A mapping (or `hyperparams.Config`) with a `type` key.
          **kwargs: More arguments for the builder (e.g. `name`).

        Raises:
          ValueError: `type` is missing or not registered.
        """
        params = dict(config.as_dict() if hasattr(config, "as_dict") else config)
        name = params.pop("type", None)
        if not name:
            raise ValueError(f"A {self._kind} config needs a `type`; registered: {', '.join(self.names) or 'none'}.")
        return self.lookup(name)(**params, **kwargs)


ENCODERS = Registry("encoder")
HEADS = Registry("head")
ARCHITECTURES = Registry("architecture")

register_encoder = ENCODERS.register
register_head = HEADS.register
register_architecture = ARCHITECTURES.register
