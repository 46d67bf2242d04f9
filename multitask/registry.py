"""One registry mechanism for every pluggable kind: encoders, heads, architectures, weightings.

A `Registry` maps config `type` names to builders (classes or factory
functions). Each kind has one instance (`multitask.modeling.registry.ENCODERS`,
`HEADS`, `ARCHITECTURES`, `multitask.weighting.registry.WEIGHTINGS`), filled
by a decorator on the builder:

    @registry.register_encoder("my_encoder")
    class MyEncoder(keras.layers.Layer):
        def __init__(self, units=8, **kwargs): ...

A config then names it, `{type: my_encoder, units: 16}`: `check` validates
such a block before anything is built (a known `type`, only keys the builder
takes) and `build` calls the builder with the block's other keys.

Each built-in block lives in its own module of its kind's package, and the
package's `__init__` imports them all with `import_submodules`, so adding a
block is adding one module (and its test); nothing else changes.
"""
import importlib
import inspect
import pkgutil
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import keras


class AlreadyRegisteredError(KeyError, ValueError):
    """A name registered twice.

    Both a `KeyError` (as Model Garden's registries and `register_weighting`
    raise) and a `ValueError` (as the modeling registries raised).
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class Registry:
    """Named builders of one kind of building block."""

    def __init__(self, kind: str):
        """Creates an empty registry.

        Args:
          kind: The block's name in error messages, e.g. "encoder".
        """
        self._kind = kind
        self._builders: Dict[str, Callable[..., Any]] = {}

    @property
    def kind(self) -> str:
        """What the registry holds, e.g. "encoder"."""
        return self._kind

    def register(self, name: str) -> Callable:
        """Returns a decorator that registers a class or factory under `name`.

        Raises:
          AlreadyRegisteredError: `name` is already registered (a `KeyError`
            and a `ValueError`).
        """
        def decorator(builder):
            if name in self._builders:
                previous = self._builders[name]
                raise AlreadyRegisteredError(
                    f"{self._kind} {name!r} is already registered "
                    f"(by {getattr(previous, '__qualname__', repr(previous))}).")
            self._builders[name] = builder
            return builder
        return decorator

    @property
    def names(self) -> List[str]:
        """The registered names, sorted."""
        return sorted(self._builders)

    def __contains__(self, name) -> bool:
        return name in self._builders

    def _listing(self) -> str:
        return ", ".join(self.names) or "none"

    def lookup(self, name: str) -> Callable[..., Any]:
        """Returns the builder registered under `name`.

        Raises:
          ValueError: `name` is not registered; the message lists the registered names.
        """
        if name not in self._builders:
            raise ValueError(f"Unknown {self._kind} {name!r}; registered: {self._listing()}.")
        return self._builders[name]

    def arguments(self, name: str) -> Optional[List[str]]:
        """The keyword arguments `name`'s builder takes, in order, or None when it takes any.

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
        params = _as_dict(config)
        name = params.pop("type", None)
        if not name:
            raise ValueError(f"{field} needs a `type`; registered {self._kind}s: {self._listing()}.")
        if name not in self._builders:
            raise ValueError(f"{field}.type is {name!r}, an unknown {self._kind}; registered: {self._listing()}.")
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
        params = _as_dict(config)
        name = params.pop("type", None)
        if not name:
            raise ValueError(f"A {self._kind} config needs a `type`; registered: {self._listing()}.")
        return self.lookup(name)(**params, **kwargs)


def _as_dict(config) -> Dict[str, Any]:
    return dict(config.as_dict() if hasattr(config, "as_dict") else config)


def import_submodules(package: str, path: Iterable[str]) -> List[Any]:
    """Imports every module of a package, which registers the blocks they define.

    Called from a package's `__init__` as `import_submodules(__name__, __path__)`.

    Args:
      package: The package's dotted name.
      path: The package's `__path__`.

    Returns:
      The imported modules, sorted by name.
    """
    names = sorted(info.name for info in pkgutil.iter_modules(path))
    return [importlib.import_module(f"{package}.{name}") for name in names]
