"""The registry of weighting methods: `register_weighting` and `get_weighting`."""
import inspect
from typing import Callable, Dict, List, Type

from multitask.weighting import base

_REGISTRY: Dict[str, Type[base.Weighting]] = {}


def register_weighting(name: str) -> Callable[[Type[base.Weighting]], Type[base.Weighting]]:
    """Class decorator registering a `Weighting` under `name`.

    Raises:
      KeyError: `name` is already registered.
    """

    def decorator(cls):
        if name in _REGISTRY:
            raise KeyError(f"Weighting {name!r} is already registered ({_REGISTRY[name].__name__}).")
        _REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return decorator


def known_weightings() -> List[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def weighting_class(name: str) -> Type[base.Weighting]:
    """The class registered as `name` (its `loss_level`, `gradient_kinds`, ...).

    Raises:
      ValueError: An unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown weighting {name!r}; known: {', '.join(known_weightings())}.")
    return _REGISTRY[name]


def needs_rep_grad(name: str) -> bool:
    """Whether weighting `name` takes only representation gradients (it runs only with `rep_grad`)."""
    cls = weighting_class(name)
    return not cls.loss_level and base.PARAMETER not in cls.gradient_kinds


def hyperparameters(name: str) -> List[str]:
    """The keyword arguments weighting `name` accepts besides num_tasks."""
    signature = inspect.signature(_REGISTRY[name].__init__)
    return [p for p in signature.parameters if p not in ("self", "num_tasks", "name")]


def get_weighting(name: str, num_tasks: int, **kwargs) -> base.Weighting:
    """Builds the weighting registered as `name` for `num_tasks` tasks.

    Args:
      name: A registered name, e.g. "ew", "mgda".
      num_tasks: T.
      **kwargs: The method's hyper-parameters.

    Raises:
      ValueError: An unknown name (the message lists the known ones) or an
        unknown hyper-parameter (the message lists the method's).
    """
    cls = weighting_class(name)
    allowed = hyperparameters(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"weighting {name!r} has no hyper-parameter {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'none'}."
        )
    return cls(num_tasks, **kwargs)
