"""Tests for strict overrides: unknown keys, wrong types and one-of choices, each one line, nothing written."""
import os

import pytest

from official.core import train_utils

from multitask import plugins
from multitask import train

# The types Keras 3 builds here; Model Garden's lars, slide and adafactor are refused too.
OPTIMIZERS = ("adafactor_keras, adagrad, adam, adam_experimental, adamw, adamw_experimental, lamb, rmsprop, sgd, "
              "sgd_experimental")


@pytest.mark.parametrize("override, message", [
    ("trainer.train_steps=abc", "trainer.train_steps is 'abc'; it must be an integer."),
    ("trainer.train_steps=1.5", "trainer.train_steps is 1.5; it must be an integer."),
    ("trainer.rep_grad=2", "trainer.rep_grad is 2; it must be true or false."),
    ("trainer.successive_regularization=strong", "trainer.successive_regularization is 'strong'; it must be a number."),
    ("task.init_checkpoint=5", "task.init_checkpoint is 5; it must be a string (quote it)."),
    ("task.frozen_parts=encoder", "task.frozen_parts is 'encoder'; it must be a list of strings."),
    ("task.model.hidden_sizes=[8,x]", "task.model.hidden_sizes is [8, 'x']; it must be a list of integers."),
    ("trainer.model_selection=mean", "trainer.model_selection is 'mean'; it must be a mapping of its fields."),
    ("trainer.optimizer_config.optimizer.type=adagradx",
     f"trainer.optimizer_config.optimizer.type is 'adagradx'; allowed: {OPTIMIZERS}."),
    ("trainer.optimizer_config.learning_rate.type=constnt",
     "trainer.optimizer_config.learning_rate.type is 'constnt'; allowed: constant, cosine, exponential, "
     "polynomial, power, power_linear, power_with_offset, stepwise."),
    ("trainer.optimizer_config.optimizer.type=lars",
     f"trainer.optimizer_config.optimizer.type is 'lars'; allowed: {OPTIMIZERS}."),
    ("trainer.optimizer_config.warmup.type=linar",
     "trainer.optimizer_config.warmup.type is 'linar'; allowed: linear, polynomial."),
])
def test_bad_values_are_one_line_and_write_nothing(tmp_path, override, message):
    model_dir = tmp_path / "run"
    with pytest.raises(train.UsageError) as error:
        train.run(train.launcher_flags(model_dir=str(model_dir), params_override=override))
    assert str(error.value) == f"--params_override: {message}"
    assert not model_dir.exists()


def test_a_one_of_block_takes_its_other_choices():
    params = train.parse_params(train.launcher_flags(params_override=(
        "trainer.optimizer_config.optimizer.type=sgd,trainer.optimizer_config.optimizer.sgd.momentum=0.9")))
    assert params.trainer.optimizer_config.optimizer.sgd.momentum == 0.9
    with pytest.raises(train.UsageError, match=r"unknown key 'trainer.optimizer_config.optimizer.sgd.momentm'; "
                                               r"allowed under trainer.optimizer_config.optimizer.sgd: .*momentum"):
        train.parse_params(train.launcher_flags(params_override="trainer.optimizer_config.optimizer.sgd.momentm=1"))


def test_yaml_numbers_without_a_dot_become_floats(tmp_path):
    config = tmp_path / "lr.yaml"
    config.write_text("trainer:\n  optimizer_config:\n    learning_rate:\n      constant:\n"
                      "        learning_rate: 1e-3\n")
    params = train.parse_params(train.launcher_flags(config_file=[str(config)]))
    assert params.trainer.optimizer_config.learning_rate.constant.learning_rate == 0.001


def test_every_experiment_s_params_yaml_loads_back(tmp_path):
    plugins.load_experiments(())
    for name in sorted(plugins.registered_experiments()):
        params = train.load_experiment(name)
        train_utils.serialize_config(params, str(tmp_path / name))
        loaded = train.parse_params(train.launcher_flags(
            experiment=name, config_file=[os.path.join(tmp_path, name, "params.yaml")]))
        assert loaded.as_dict() == params.as_dict(), name
