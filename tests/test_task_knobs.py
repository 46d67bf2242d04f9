"""Tests for setting one task's knobs by its name (`task.tasks.<name>`), from YAML and --params_override."""
import pytest

from multitask import train
from multitask.experiments import shapes

TINY = "trainer.train_steps=2,trainer.steps_per_loop=1,trainer.validation_interval=2,trainer.checkpoint_interval=1"
ROUTINE_FIELDS = ("early_stopping, enabled, eval_steps, learning_rate_multiplier, loss_weight, loss_weight_schedule, "
                  "optimizer_config, sampling_weight, start_step, stop_step, task_config, task_name, task_weight")


def _routines(params):
    return {r.resolved_name(): r for r in params.task.task_routines}


def test_params_override_sets_one_task_s_knobs():
    params = train.parse_params(train.launcher_flags(params_override=(
        "task.tasks.circle.loss_weight=2,task.tasks.circle.early_stopping.metric=accuracy,"
        "task.tasks.square.enabled=false,task.tasks.square.task_config.train_data.global_batch_size=16")))
    routines = _routines(params)
    assert list(routines) == ["circle", "square", "inv_circle"]
    assert routines["circle"].loss_weight == 2 and routines["circle"].early_stopping.metric == "accuracy"
    assert routines["square"].enabled is False and routines["square"].task_config.train_data.global_batch_size == 16
    default = shapes.shapes().task.task_routines[2]
    assert routines["inv_circle"].as_dict() == default.as_dict()


def test_config_files_and_params_override_apply_in_order(tmp_path):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("task:\n  tasks:\n    circle: {loss_weight: 3.0, early_stopping: {metric: accuracy, patience: 2}}\n"
                     "    square: {loss_weight: 4.0}\n")
    second.write_text("task:\n  tasks:\n    circle: {loss_weight: 5.0}\n")
    routines = _routines(train.parse_params(train.launcher_flags(
        config_file=[str(first), str(second)], params_override="task.tasks.square.loss_weight=6")))
    assert routines["circle"].loss_weight == 5.0 and routines["circle"].early_stopping.patience == 2
    assert routines["square"].loss_weight == 6.0


def test_names_refer_to_the_routines_restated_in_the_same_file(tmp_path):
    config = tmp_path / "two.yaml"
    config.write_text("task:\n  model: {task_names: [round, square]}\n  task_routines:\n"
                      "    - {task_name: round, task_config: {shape: circle, name: circle}}\n"
                      "    - {task_name: square, task_config: {shape: square, name: square}}\n"
                      "  tasks:\n    round: {loss_weight: 0.5}\n")
    routines = _routines(train.parse_params(train.launcher_flags(config_file=[str(config)])))
    assert list(routines) == ["round", "square"] and routines["round"].loss_weight == 0.5


@pytest.mark.parametrize("override, message", [
    ("task.tasks.squar.loss_weight=2",
     "--params_override: unknown task 'squar' under task.tasks; known tasks: circle, square, inv_circle."),
    ("task.tasks.circle.loss_wieght=2",
     f"--params_override: unknown key 'task.tasks.circle.loss_wieght'; allowed under task.tasks.circle: "
     f"{ROUTINE_FIELDS}."),
    ("task.tasks.circle.loss_weight=heavy", "--params_override: task.tasks.circle.loss_weight is 'heavy'; "
                                           "it must be a number."),
    ("task.tasks.circle=2", f"--params_override: task.tasks.circle must be a mapping of task routine fields "
                            f"({ROUTINE_FIELDS}); got 2."),
])
def test_unknown_task_or_knob_is_one_line_and_writes_nothing(tmp_path, override, message):
    model_dir = tmp_path / "run"
    with pytest.raises(train.UsageError) as error:
        train.run(train.launcher_flags(model_dir=str(model_dir), params_override=override))
    assert str(error.value) == message
    assert not model_dir.exists()


def test_python_override_by_name():
    params = shapes.shapes()
    params.override({"task": {"tasks": {"inv_circle": {"task_weight": 0.25}}}})
    assert params.task.task_routines[2].task_weight == 0.25
    with pytest.raises(KeyError, match="task.tasks: unknown task 'oval'; known tasks: circle, square, inv_circle."):
        params.override({"task": {"tasks": {"oval": {"enabled": False}}}})


def test_a_run_s_params_yaml_holds_the_knobs_and_loads_back(tmp_path):
    model_dir = tmp_path / "run"
    override = f"{TINY},task.tasks.circle.loss_weight=2,task.tasks.square.enabled=false"
    train.run(train.launcher_flags(model_dir=str(model_dir), mode="train", params_override=override))
    params_yaml = (model_dir / "params.yaml").read_text()
    assert "tasks:" not in params_yaml and "loss_weight: 2" in params_yaml
    routines = _routines(train.parse_params(train.launcher_flags(config_file=[str(model_dir / "params.yaml")])))
    assert routines["circle"].loss_weight == 2 and routines["square"].enabled is False
    assert routines["inv_circle"].loss_weight is None and routines["inv_circle"].enabled is True
