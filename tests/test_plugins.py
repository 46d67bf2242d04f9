"""Experiments from the user's code: entry points, --import_module, and no shadowing.

The user project lives outside this repository (copied to a temporary
directory): the package `my_project` (examples/my_project) is "installed" by a
`.dist-info` directory on PYTHONPATH that declares its `multitask.experiments`
entry point, exactly what pip writes; the working directory holds the user's
own top-level `experiments` package, the name our shipped experiments used to
take.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from multitask import plugins
from multitask import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "trainer.train_steps=4,trainer.steps_per_loop=2,trainer.validation_interval=2,trainer.checkpoint_interval=2"


def _install(site, package, module, name="my-project", source=None):
    """Writes what `pip install` leaves: the package and a dist-info declaring the entry point."""
    if source:
        shutil.copytree(source, site / package)
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\n{package} = {module}\n")


@pytest.fixture(name="user_project")
def fixture_user_project(tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    _install(site, "my_project", "my_project.experiments",
             source=os.path.join(REPO, "examples", "my_project", "my_project"))
    (work / "experiments").mkdir(parents=True)
    (work / "experiments" / "__init__.py").write_text(textwrap.dedent('''
        """The user's own `experiments` package, run from the project's directory."""
        from official.core import exp_factory
        from my_project import experiments


        @exp_factory.register_config_factory("interactions_rating")
        def interactions_rating():
            params = experiments.interactions()
            params.task.task_routines = params.task.task_routines[:1]
            params.task.model.task_names = ("rating",)
            return params
    '''))
    return site, work


def _launch(site, work, module, *args):
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=work, capture_output=True, text=True,
                          timeout=300, env=env)


def test_user_experiments_and_ours_run_from_a_project_with_its_own_experiments_package(user_project):
    site, work = user_project
    # The user's `experiments` package (--import_module) builds on the entry point's `my_project`.
    result = _launch(site, work, "multitask.train", "--import_module=experiments", "--experiment=interactions_rating",
                     "--mode=train", "--model_dir=run", f"--params_override={TINY}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Running experiment 'interactions_rating'" in result.stdout
    assert (work / "run" / "ckpt-4.index").exists() and (work / "run" / "metrics.json").exists()
    # Ours, from the same directory: `experiments` there is the user's, ours is multitask.experiments.
    result = _launch(site, work, "multitask.train", "--import_module=experiments", "--experiment=shapes",
                     "--mode=train", "--model_dir=shapes_run", f"--params_override={TINY}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work / "shapes_run" / "ckpt-4.index").exists()


def test_entry_points_register_experiments(user_project, monkeypatch):
    site, _ = user_project
    monkeypatch.syspath_prepend(str(site))
    assert [ep.name for ep in plugins.entry_points()] == ["my_project"]
    params = train.parse_params(train.launcher_flags(experiment="interactions"))
    assert [r.task_name for r in params.task.task_routines] == ["rating", "click"]


def test_a_broken_entry_point_is_one_line_naming_its_package(tmp_path, monkeypatch):
    _install(tmp_path, "broken", "no_such_package.experiments", name="broken-plugins")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(train.UsageError) as error:
        train.parse_params(train.launcher_flags(experiment="shapes"))
    message = str(error.value)
    assert message == (
        "entry point 'broken' of package 'broken-plugins' (group 'multitask.experiments'): cannot import "
        "'no_such_package.experiments' (ModuleNotFoundError: No module named 'no_such_package'); fix or "
        "uninstall that package.")


def test_an_unknown_module_or_experiment_is_one_line():
    with pytest.raises(train.UsageError, match=r"^--import_module: cannot import 'no_such_module' "
                                               r"\(ModuleNotFoundError: No module named 'no_such_module'\)\.$"):
        train.parse_params(train.launcher_flags(import_module=["no_such_module"]))
    with pytest.raises(train.UsageError) as error:
        train.parse_params(train.launcher_flags(experiment="nope"))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("--experiment: unknown experiment 'nope'; registered: ")
    assert "multi_digits, " in message and "text_tags" in message
    assert ("register it with @exp_factory.register_config_factory('nope') in a module that you import with "
            "--import_module=<module>, or that your package declares under the 'multitask.experiments' "
            "entry-point group.") in message


def test_a_failing_config_factory_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "bad_factory.py").write_text(textwrap.dedent('''
        from official.core import exp_factory


        @exp_factory.register_config_factory("bad_factory_experiment")
        def bad_factory_experiment():
            raise TypeError("RuntimeConfig.__init__() got an unexpected keyword argument 'seed'")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(train.UsageError) as error:
        train.parse_params(train.launcher_flags(experiment="bad_factory_experiment", import_module=["bad_factory"]))
    assert str(error.value) == (
        "--experiment: the config factory of 'bad_factory_experiment' failed: TypeError: "
        "RuntimeConfig.__init__() got an unexpected keyword argument 'seed'.")
