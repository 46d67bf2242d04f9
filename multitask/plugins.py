"""Loads the code that registers experiments: ours, installed packages', and named modules.

An experiment is a function registered with
`official.core.exp_factory.register_config_factory(name)`; its module must be
imported before the launcher looks the name up. Three kinds of module are:

- the shipped experiments, `multitask.experiments`;
- every module that an installed package declares in the entry-point group
  `multitask.experiments`, e.g. in the package's `pyproject.toml`:

      [project.entry-points."multitask.experiments"]
      my_project = "my_project.experiments"

- the modules named by the launcher's repeatable `--import_module` flag
  (e.g. `--import_module=my_project.experiments`), imported in that order
  from the current directory or any installed package.

A module that fails to import is a `PluginError` whose one line names the
module (and, for an entry point, the package that declares it) and the error.
"""
import importlib
from importlib import metadata
from typing import List, Sequence

from official.core import exp_factory

from multitask import errors

ENTRY_POINT_GROUP = "multitask.experiments"
SHIPPED = "multitask.experiments"


class PluginError(ValueError):
    """A module that should register experiments cannot be imported (one line)."""


def _error_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {errors.one_line(error)}"


def _import(module: str, what: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as error:  # pylint: disable=broad-except  (user code: any error)
        raise PluginError(f"{what}: cannot import {module!r} ({_error_line(error)}).") from error


def entry_points() -> List[metadata.EntryPoint]:
    """The installed entry points of the `multitask.experiments` group, sorted by name."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def load_experiments(modules: Sequence[str] = ()) -> None:
    """Imports the shipped experiments, every entry point's module, then `modules`.

    Importing twice is a no-op (Python caches modules), so this may be called
    more than once.

    Args:
      modules: Module names from `--import_module`, imported in order.

    Raises:
      PluginError: A module cannot be imported.
    """
    _import(SHIPPED, "the shipped experiments")
    for entry_point in entry_points():
        source = getattr(entry_point, "dist", None)
        package = f" of package {source.name!r}" if source is not None else ""
        what = f"entry point {entry_point.name!r}{package} (group {ENTRY_POINT_GROUP!r})"
        try:
            entry_point.load()
        except Exception as error:  # pylint: disable=broad-except
            raise PluginError(
                f"{what}: cannot import {entry_point.value!r} ({_error_line(error)}); fix or uninstall "
                "that package.") from error
    for module in modules or ():
        _import(module, "--import_module")


def registered_experiments() -> List[str]:
    """Names of all experiments registered with `exp_factory`, sorted."""
    return sorted(exp_factory._REGISTERED_CONFIGS)  # pylint: disable=protected-access


def unknown_experiment_message(name: str) -> str:
    """One line for an experiment no loaded module registered: what exists and how to add one."""
    return (
        f"--experiment: unknown experiment {name!r}; registered: {', '.join(registered_experiments())}. "
        f"To add one, register it with @exp_factory.register_config_factory({name!r}) in a module "
        f"that you import with --import_module=<module>, or that your package declares under the "
        f"{ENTRY_POINT_GROUP!r} entry-point group."
    )
