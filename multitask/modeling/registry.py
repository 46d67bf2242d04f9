"""Registries of encoders, heads and architectures, keyed by a config `type`.

A plugin adds a building block without touching the core:

    @registry.register_encoder("my_encoder")
    class MyEncoder(keras.layers.Layer):
        def __init__(self, units=8, **kwargs): ...

and a model config then names it: `encoder: {type: my_encoder, units: 16}`.
"""
import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import keras


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

    def arguments(self, name: str) -> Optional[List[str]]:
        """The keyword arguments `name`'s builder takes, or None when it takes any.

        A keras Layer class that forwards `**kwargs` to `keras.layers.Layer`
        takes its own arguments plus the Layer ones (`trainable`, `dtype`, ...).

        Raises:
          ValueError: `name` is not registered.
        """
        builder = self.lookup(name)
        parameters = list(inspect.signature(builder).parameters.values())
        named = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if any(p.kind == p.VAR_KEYWORD for p in parameters):
            if not (isinstance(builder, type) and issubclass(builder, keras.layers.Layer)):
                return None
            layer_parameters = inspect.signature(keras.layers.Layer.__init__).parameters.values()
            named += [p.name for p in layer_parameters if p.kind == p.KEYWORD_ONLY]
        return named

    def check(self, config: Mapping[str, Any], field: str, reserved: Sequence[str] = ()) -> None:
        """Checks a block config before anything is built: a known `type` and only keys it takes.

        Args:
          config: A mapping (or `hyperparams.Config`) with a `type` key.
          field: The config path of the block, for error messages.
          reserved: Arguments the caller passes itself (not config keys).

        Raises:
          ValueError: No or an unknown `type` (the message lists the registered
            ones), or a key the block's builder does not take (the message
            lists the ones it takes).
        """
        params = dict(config.as_dict() if hasattr(config, "as_dict") else config)
        name = params.pop("type", None)
        if not name:
            raise ValueError(f"{field} needs a `type`; registered {self._kind}s: {', '.join(self.names) or 'none'}.")
        if name not in self._builders:
            raise ValueError(
                f"{field}.type is {name!r}, an unknown {self._kind}; registered: {', '.join(self.names) or 'none'}."
            )
        allowed = self.arguments(name)
        if allowed is None:
            return
        allowed = [a for a in allowed if a not in reserved]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(
                f"{field}: {self._kind} {name!r} does not take {', '.join(unknown)}; it takes: "
                f"{', '.join(sorted(allowed)) or 'no arguments'}."
            )

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
