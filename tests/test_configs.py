"""Tests for the config dataclasses: defaults, YAML overrides, validation."""
import pytest

from official.modeling import hyperparams

import toy
from multitask import configs


def _experiment(**trainer):
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(
            task_routines=(
                configs.TaskRoutine(task_config=toy.FooConfig()),
                configs.TaskRoutine(task_config=toy.BarConfig()),
            )
        ),
        trainer=configs.MultiTaskTrainerConfig(**trainer),
    )


def test_defaults_mirror_model_garden():
    trainer = configs.MultiTaskTrainerConfig()
    assert trainer.trainer_type == "interleaving"
    assert trainer.task_sampler.type == "proportional"
    assert trainer.task_sampler.get().alpha == 1.0
    assert configs.TaskRoutine().task_weight == 1.0
    assert configs.AnnealingSampleConfig().steps_per_epoch == 5


def test_yaml_override_and_round_trip(tmp_path):
    params = _experiment()
    path = tmp_path / "override.yaml"
    path.write_text(
        "trainer:\n  trainer_type: joint\n  task_sampler:\n    type: annealing\n"
        "    annealing: {steps_per_epoch: 10, total_steps: 100}\n"
    )
    params = hyperparams.override_params_dict(params, str(path), is_strict=True)
    assert params.trainer.trainer_type == "joint"
    assert params.trainer.task_sampler.get().total_steps == 100
    saved = tmp_path / "params.yaml"
    hyperparams.save_params_dict_to_yaml(params, str(saved))
    assert "trainer_type: joint" in saved.read_text()


def test_valid_experiment_passes():
    _experiment(trainer_type="joint").validate()
    _experiment(trainer_type="interleaving", task_sampler=configs.TaskSamplingConfig(type="uniform")).validate()


def test_unknown_trainer_type():
    with pytest.raises(ValueError, match="trainer.trainer_type is 'alternate'; allowed: joint, interleaving"):
        _experiment(trainer_type="alternate").validate()


def test_unknown_sampler_type():
    params = _experiment(task_sampler=configs.TaskSamplingConfig(type="softmax"))
    with pytest.raises(ValueError, match="task_sampler.type is 'softmax'; allowed: uniform, proportional, annealing, temperature, round_robin, epoch_shuffled"):
        params.validate()


def test_routine_errors():
    with pytest.raises(ValueError, match=r"task.task_routines\[0\].task_config is not set"):
        configs.MultiTaskConfig(task_routines=(configs.TaskRoutine(task_name="x"),)).validate()
    nameless = toy.FooConfig(name="")
    with pytest.raises(ValueError, match=r"task_routines\[0\] has no task_name"):
        configs.MultiTaskConfig(task_routines=(configs.TaskRoutine(task_config=nameless),)).validate()
    duplicated = (configs.TaskRoutine(task_config=toy.FooConfig()),) * 2
    with pytest.raises(ValueError, match="duplicated task name 'foo'"):
        configs.MultiTaskConfig(task_routines=duplicated).validate()


def test_multi_eval_config_validates_eval_tasks():
    params = configs.MultiEvalExperimentConfig(
        task=toy.FooConfig(), eval_tasks=(configs.TaskRoutine(task_config=toy.FooConfig()),) * 2
    )
    with pytest.raises(ValueError, match="eval_tasks: duplicated task name 'foo'"):
        params.validate()


def test_weighting_config_takes_every_hyperparameter_of_every_method():
    import inspect
    from multitask import weighting

    for name in weighting.known_weightings():
        signature = inspect.signature(weighting.weighting_class(name))
        block = {"type": name, **{h: signature.parameters[h].default for h in weighting.hyperparameters(name)}}
        params = _experiment(trainer_type="joint")
        params.override({"trainer": {"weighting": block}}, is_strict=True)
        params.trainer.validate()
        assert params.trainer.weighting.type == name


def test_weighting_config_takes_a_new_methods_hyperparameter(monkeypatch):
    """A method registered outside the package needs no change to configs.py."""
    from multitask import registry
    from multitask import weighting

    plugins = registry.Registry("weighting")

    @plugins.register("plugin_method")
    class PluginMethod(weighting.LossWeighting):  # pylint: disable=unused-variable
        def __init__(self, num_tasks, strength=1.0, name=None):
            super().__init__(num_tasks, name=name)
            self.strength = strength

    monkeypatch.setattr(weighting, "WEIGHTINGS", plugins)
    params = _experiment(trainer_type="joint")
    params.override({"trainer": {"weighting": {"type": "plugin_method", "strength": 2.0}}}, is_strict=True)
    params.trainer.validate()
    assert params.trainer.weighting.hyperparameters() == {"strength": 2.0}
    params.override({"trainer": {"weighting": {"strenght": 2.0}}}, is_strict=True)
    with pytest.raises(ValueError, match="'plugin_method' does not take strenght; it takes: strength"):
        params.trainer.validate()


def test_weighting_from_the_command_line_and_yaml(tmp_path):
    from multitask import train

    params = _experiment(trainer_type="joint")
    train.apply_override(
        params, "trainer.weighting.type=mgda,trainer.weighting.normalization=loss+", "--params_override")
    params.trainer.validate()
    assert params.trainer.weighting.hyperparameters() == {"normalization": "loss+"}
    path = tmp_path / "weighting.yaml"
    path.write_text("trainer: {weighting: {type: mgda, normalization: l2}}\n")
    train.apply_override(params, str(path), "--config_file")
    assert params.trainer.weighting.hyperparameters() == {"normalization": "l2"}
    # Another type replaces the block: mgda's normalization does not stay behind.
    train.apply_override(params, "trainer.weighting.type=dwa", "--params_override")
    assert params.trainer.weighting.as_dict() == {"type": "dwa"}
    train.apply_override(params, "trainer.weighting.temprature=3", "--params_override")
    with pytest.raises(ValueError, match=r"trainer.weighting: weighting 'dwa' does not take temprature; "
                                         r"it takes: temperature"):
        params.trainer.validate()
    # Keys set before any type are kept for the type that comes.
    params = _experiment(trainer_type="joint")
    train.apply_override(params, "trainer.weighting.normalization=l2", "--params_override")
    train.apply_override(params, "trainer.weighting.type=mgda", "--params_override")
    assert params.trainer.weighting.as_dict() == {"type": "mgda", "normalization": "l2"}
    # A params.yaml written with the former flat fields (unset ones null) still reads and validates.
    params = _experiment(trainer_type="joint")
    params.override({"trainer": {"weighting": {"type": "mgda", "normalization": "l2", "alpha": None, "seed": None}}},
                    is_strict=True)
    params.trainer.validate()
    saved = tmp_path / "params.yaml"
    hyperparams.save_params_dict_to_yaml(params, str(saved))
    assert "normalization: l2" in saved.read_text()


def test_weighting_config_validation():
    joint = dict(trainer_type="joint")
    configs.MultiTaskTrainerConfig(weighting={"type": "mgda", "normalization": "l2"}, **joint).validate()
    in_python = configs.WeightingConfig(type="mgda", normalization="l2")
    assert configs.MultiTaskTrainerConfig(weighting=in_python, **joint).weighting.hyperparameters() == {
        "normalization": "l2"}
    assert configs.WeightingConfig().as_dict() == {"type": ""}
    with pytest.raises(ValueError, match="weighting.type is 'magic', an unknown weighting; registered: .*mgda"):
        configs.MultiTaskTrainerConfig(weighting={"type": "magic"}, **joint).validate()
    with pytest.raises(ValueError, match="'dwa' does not take alpha; it takes: temperature"):
        configs.MultiTaskTrainerConfig(weighting={"type": "dwa", "alpha": 2.0}, **joint).validate()
    with pytest.raises(ValueError, match="sets temperature without a type"):
        configs.MultiTaskTrainerConfig(weighting={"temperature": 2.0}, **joint).validate()
    with pytest.raises(ValueError, match="rep_grad needs a trainer.weighting.type"):
        configs.MultiTaskTrainerConfig(rep_grad=True, **joint).validate()
    with pytest.raises(ValueError, match="Use trainer_type 'joint'"):
        configs.MultiTaskTrainerConfig(
            trainer_type="interleaving", task_sampler={"type": "uniform"}, weighting={"type": "ew"}
        ).validate()

