"""Strict overrides: an override mapping checked against the config it is about to change.

`--config_file` and `--params_override` become a nested mapping that
`hyperparams.Config.override` applies without looking at the values: a typo
in a key, `trainer.train_steps=abc` or `optimizer.type=adagradx` used to end
in a traceback deep inside the run, or in "type: 'adagradx' is not a valid
key!" with neither the field nor the choices. `find_problem` finds the first
such mistake before anything is applied, as one line naming the field, the
bad value and what is allowed:

- a key the config does not have (the keys allowed there are listed);
- a value whose type does not match the field's annotation (int, float,
  bool, str, a tuple of them, a nested config); a float field also takes a
  number written as a string, as YAML reads `1e-3`, which is converted;
- a one-of block's `type` (`hyperparams.OneOfConfig`: optimizer,
  learning_rate, warmup, ...) that names none of its choices (for the
  optimization blocks, those `multitask.core.optimization` builds);
- under `task.tasks` (see `task_knobs`), an unknown task name or knob.

Open blocks (`open_config.OpenConfig`) take any key; their owner's
`validate()` checks them. This module has no TensorFlow dependency.
"""
import collections.abc
import typing
from typing import Any, Dict, List, Mapping, Optional, Tuple

from official.modeling import hyperparams

from multitask import task_knobs

# What a field of each annotation takes: (one value, a list of them).
_KINDS = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          bool: ("true or false", "booleans"), str: ("a string (quote it)", "strings")}


# A one-of block's choices where this library builds fewer than the block
# has fields (see `support_only`).
_SUPPORTED_TYPES: Dict[type, Tuple[str, ...]] = {}


def support_only(one_of_class: type, types: Tuple[str, ...]) -> None:
    """Makes an override of a `one_of_class` block's `type` accept only `types`."""
    _SUPPORTED_TYPES[one_of_class] = tuple(types)


def _fields(params: hyperparams.Config) -> List[str]:
    """The keys an override may set: every field, a one-of block's unchosen ones too."""
    return [key for key in params.__dict__ if key not in params.RESERVED_ATTR]


def _named_routines(params, override: Mapping[str, Any]) -> Optional[Dict[str, hyperparams.Config]]:
    """`{task: routine}` when `override["tasks"]` names tasks of `params`' routines, else None.

    None also where the same override restates `task_routines`: then
    `task_knobs.merge` checks the names against the new routines.
    """
    if "task_routines" in override:
        return None
    return task_knobs.routines_by_name(params.task_routines)


def _takes_tasks(params, key: str) -> bool:
    """Whether `key` is the `tasks` mapping of a config with task routines."""
    return key == task_knobs.TASKS_KEY and hasattr(params, "task_routines") and key not in params.__dict__


def find_unknown_key(params: hyperparams.Config, override: Mapping[str, Any], prefix: str = ""):
    """The first key `params` lacks: `(dotted_key, allowed, kind)`, kind "key" or "task"; or None."""
    if getattr(params, "accepts_new_keys", False):
        return None  # An open block: its owner's `validate()` checks the keys.
    allowed = sorted(_fields(params))
    for key, value in override.items():
        found = None
        if _takes_tasks(params, key):
            named = _named_routines(params, override)
            if named is not None and isinstance(value, dict):
                found = _find_in_named(named, value, f"{prefix}{key}.")
        elif key not in allowed:
            return f"{prefix}{key}", allowed, "key"
        elif isinstance(value, dict) and isinstance(getattr(params, key), hyperparams.Config):
            found = find_unknown_key(getattr(params, key), value, f"{prefix}{key}.")
        if found:
            return found
    return None


def _find_in_named(named: Mapping[str, hyperparams.Config], by_name: Mapping[str, Any], prefix: str):
    for name, knobs in by_name.items():
        if name not in named:
            return f"{prefix}{name}", list(named), "task"
        if isinstance(knobs, dict):
            found = find_unknown_key(named[name], knobs, f"{prefix}{name}.")
            if found:
                return found
    return None


def _annotations(params: hyperparams.Config) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(type(params))
    except Exception:  # pylint: disable=broad-except  (an annotation that does not resolve: not checked)
        return {}


def _expected(annotation, value) -> Tuple[Optional[str], Any]:
    """`(what the field takes where `value` does not fit it, else None; the value to set)`."""
    if value is None:
        return None, value  # Model Garden's "unset", even where the annotation is not Optional.
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        others = [a for a in args if a is not type(None)]
        return _expected(others[0], value) if len(others) == 1 else (None, value)
    if origin in (tuple, list, collections.abc.Sequence):
        element = args[0] if args else None
        plural = f"a list of {_KINDS[element][1]}" if element in _KINDS else "a list"
        if not isinstance(value, (list, tuple)):
            return plural, value
        if element not in _KINDS:
            return None, value
        checked = [_expected(element, item) for item in value]
        if any(what for what, _ in checked):
            return plural, value
        return None, type(value)(item for _, item in checked)
    if annotation not in _KINDS:
        if isinstance(annotation, type) and issubclass(annotation, hyperparams.Config) and not isinstance(
                value, (dict, hyperparams.Config)):
            return "a mapping of its fields", value
        return None, value
    if annotation is float and isinstance(value, str):
        try:  # YAML reads 1e-3 (no dot) as a string.
            return None, float(value)
        except ValueError:
            pass
    fits = isinstance(value, annotation) and not (annotation is not bool and isinstance(value, bool))
    if annotation is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (None, value) if fits else (_KINDS[annotation][0], value)


def find_bad_value(params: hyperparams.Config, override: Dict[str, Any], prefix: str = "") -> Optional[str]:
    """The first value of `override` that its field cannot take, as one line; None if all fit.

    Converts numbers written as strings for float fields in place. Call it
    after `find_unknown_key` found nothing.
    """
    if getattr(params, "accepts_new_keys", False):
        return None
    annotations = _annotations(params)
    for key, value in override.items():
        field = f"{prefix}{key}"
        child = getattr(params, key, None)
        if _takes_tasks(params, key):
            named = _named_routines(params, override)
            pairs = [(named[name], knobs, f"{field}.{name}.") for name, knobs in value.items()
                     if isinstance(knobs, dict) and name in named] if named and isinstance(value, dict) else []
        elif key == "type" and isinstance(params, hyperparams.OneOfConfig) and value is not None:
            choices = _SUPPORTED_TYPES.get(type(params)) or [k for k in _fields(params) if k != "type"]
            if value not in choices:
                return f"{field} is {value!r}; allowed: {', '.join(choices)}."
            pairs = []
        elif isinstance(value, dict) and isinstance(child, hyperparams.Config):
            pairs = [(child, value, f"{field}.")]
        else:
            what, override[key] = _expected(annotations.get(key), value)
            if what:
                return f"{field} is {value!r}; it must be {what}."
            pairs = []
        for config, nested, nested_prefix in pairs:
            problem = find_bad_value(config, nested, nested_prefix)
            if problem:
                return problem
    return None


def find_problem(params: hyperparams.Config, override: Dict[str, Any]) -> Optional[str]:
    """The first unknown key or bad value of `override` for `params`, as one line; None if none.

    Converts numbers written as strings for float fields in place.
    """
    unknown = find_unknown_key(params, override)
    if unknown:
        key, allowed, kind = unknown
        parent = key.rpartition(".")[0] or "the top level"
        if kind == "task":
            return f"unknown task {key.rpartition('.')[2]!r} under {parent}; known tasks: {', '.join(allowed)}."
        return f"unknown key {key!r}; allowed under {parent}: {', '.join(allowed)}."
    return find_bad_value(params, override)
