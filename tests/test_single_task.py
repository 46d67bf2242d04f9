"""Tests of the single-task baselines: one task of a multi-task experiment trained alone."""
import pytest

from official.core import config_definitions as cfg
from official.core import exp_factory

import multitask.experiments  # noqa: F401  (registers the experiments)
from multitask.experiments import single_task
from multitask import train


def test_alone_config_keeps_the_task_trainer_settings_and_runtime():
    params = exp_factory.get_exp_config("shapes")
    params.override({"trainer": {"train_steps": 123, "weighting": {"type": "mgda"}}, "runtime": {"seed": 7}})
    alone = single_task.alone_config(params, "square")
    assert type(alone) is cfg.ExperimentConfig
    assert alone.task.as_dict() == params.task.task_routines[1].task_config.as_dict()
    assert alone.trainer.train_steps == 123
    assert alone.trainer.optimizer_config.as_dict() == params.trainer.optimizer_config.as_dict()
    assert alone.trainer.steps_per_loop == params.trainer.steps_per_loop
    assert "weighting" not in alone.trainer.as_dict()
    assert alone.runtime.seed == 7
    with pytest.raises(ValueError, match="task is 'triangle'; the experiment's tasks: circle, square, inv_circle"):
        single_task.alone_config(params, "triangle")


@pytest.mark.parametrize("experiment, tasks", [
    ("shapes", ("circle", "square", "inv_circle")),
    ("multi_digits", ("left", "right")),
    ("multi_mnist", ("left", "right")),
])
def test_every_task_is_registered_alone(experiment, tasks):
    joint = exp_factory.get_exp_config(experiment)
    for task in tasks:
        name = single_task.alone_name(experiment, task)
        assert name == f"{experiment}_{task}_alone"
        params = train.parse_params(train.launcher_flags(experiment=name, params_override="runtime.seed=1"))
        assert params.task.name == task
        assert params.trainer.train_steps == joint.trainer.train_steps
        assert params.runtime.seed == 1


def test_a_task_alone_trains_through_the_launcher(tmp_path):
    override = "trainer.train_steps=4,trainer.steps_per_loop=2,trainer.checkpoint_interval=4"
    logs = train.run(train.launcher_flags(
        experiment="shapes_square_alone", mode="train", model_dir=str(tmp_path), params_override=override))
    assert list(logs) == ["square"]
    assert 0.0 <= logs["square"]["accuracy"] <= 1.0
