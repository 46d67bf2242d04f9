"""The registry of weighting methods: `WEIGHTINGS`, `register_weighting` and `get_weighting`.

`WEIGHTINGS` is a `multitask.registry.Registry`, the mechanism the encoders,
heads and architectures use too; the functions here are the weighting API
on top of it.
"""
from typing import Callable, List, Type

from multitask import registry
from multitask.weighting import base

WEIGHTINGS = registry.Registry("weighting")
# Arguments of every method's constructor that are not hyper-parameters.
RESERVED_ARGUMENTS = ("num_tasks", "name")


def register_weighting(name: str) -> Callable[[Type[base.Weighting]], Type[base.Weighting]]:
    """Class decorator registering a `Weighting` under `name`; sets its `registered_name`.

    Raises:
      KeyError: `name` is already registered.
    """
    register = WEIGHTINGS.register(name)

    def decorator(cls):
        register(cls)
        cls.registered_name = name
        return cls

    return decorator


def known_weightings() -> List[str]:
    """The registered names, sorted."""
    return WEIGHTINGS.names


def weighting_class(name: str) -> Type[base.Weighting]:
    """The class registered as `name` (its `loss_level`, `gradient_kinds`, ...).

    Raises:
      ValueError: An unknown name (the message lists the known ones).
    """
    return WEIGHTINGS.lookup(name)


def needs_rep_grad(name: str) -> bool:
    """Whether weighting `name` takes only representation gradients (it runs only with `rep_grad`)."""
    cls = weighting_class(name)
    return not cls.loss_level and base.PARAMETER not in cls.gradient_kinds


def hyperparameters(name: str) -> List[str]:
    """The keyword arguments weighting `name` accepts besides num_tasks, in order.

    A constructor with `**kwargs` takes any; only its named ones are listed.

    Raises:
      ValueError: An unknown name (the message lists the known ones).
    """
    return [a for a in WEIGHTINGS.arguments(name) or () if a not in RESERVED_ARGUMENTS]


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
    if unknown and WEIGHTINGS.arguments(name) is not None:  # None: the constructor takes **kwargs.
        raise ValueError(
            f"weighting {name!r} has no hyper-parameter {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'none'}."
        )
    return cls(num_tasks, **kwargs)
