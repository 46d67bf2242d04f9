"""Tests for bad data: one-line errors before anything runs; existing checkpoints untouched."""
import dataclasses
import hashlib
import os

from typing import Tuple

import keras
import pytest
import tensorflow as tf

from official.core import exp_factory
from official.core import task_factory
from official.modeling import hyperparams

from multitask.experiments import shapes
from multitask import base_model
from multitask import configs
from multitask import model_factory
from multitask import multitask
from multitask import preflight
from multitask import train
from multitask.training import input_distribution

TINY = "trainer.train_steps=2,trainer.steps_per_loop=1,trainer.validation_interval=2,trainer.checkpoint_interval=1"


@dataclasses.dataclass
class FaultyShapesConfig(shapes.ShapesTaskConfig):
    """A shapes task whose train data have one `fault`."""

    fault: str = ""


@task_factory.register_task_cls(FaultyShapesConfig)
class FaultyShapesTask(shapes.ShapesTask):
    """Shapes data with a deliberate defect."""

    def build_inputs(self, params, input_context=None):
        dataset = super().build_inputs(params, input_context)
        fault = self.task_config.fault if params.split == "train" else ""
        if fault == "empty":
            return dataset.take(0)
        if fault == "structure":
            return dataset.map(lambda x, y: {"points": x, "labels": y})
        if fault == "shape":
            return dataset.map(lambda x, y: (tf.concat([x, x], axis=-1), y))
        if fault == "dtype":
            return dataset.map(lambda x, y: (tf.strings.as_string(x), y))
        if fault == "label_range":
            return dataset.map(lambda x, y: (x, y + 3))
        if fault == "label_shape":
            return dataset.map(lambda x, y: (x, tf.stack([y, y], axis=-1)))
        if fault == "finite":  # 3 batches, a known cardinality
            return dataset.take(3)
        if fault == "ends":  # 3 batches, an unknown cardinality
            return dataset.filter(lambda x, y: True).take(3)
        return dataset


def _faulty_experiment(fault):
    """The `shapes` experiment with the circle task's train data broken by `fault`."""
    config = shapes.shapes()
    circle = FaultyShapesConfig(fault=fault, **shapes.shapes_task_config("circle").as_dict())
    routines = [configs.TaskRoutine(task_name="circle", task_config=circle)]
    routines += [configs.TaskRoutine(task_name=s, task_config=shapes.shapes_task_config(s)) for s in shapes.SHAPES[1:]]
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(model=config.task.model, task_routines=tuple(routines)),
        trainer=config.trainer, runtime=config.runtime,
    )


FAULTS = {
    "empty": "task 'circle', train data: the dataset is empty",
    "structure": r"task 'circle', train data: the features \(\{'points': 'float32\[32, 2\]', 'labels': 'int32\[32\]'\}\) do not fit the model: The structure of `inputs` doesn't match",
    "shape": r"task 'circle', train data: the features \(float32\[32, 4\]\) do not fit the model: .*expected axis -1 of input shape to have value 2",
    "dtype": r"task 'circle', train data: the features \(string\[32, 2\]\) do not fit the model",
    "label_range": r"task 'circle', train data: the labels \(int32\[32\]\) do not fit the loss or metrics: Received a label value of [345] which is outside the valid range of \[0, 2\)",
    "label_shape": r"task 'circle', train data: the labels \(int32\[32, 2\]\) do not fit the loss or metrics",
}
for _fault in list(FAULTS) + ["finite", "ends"]:
    exp_factory.register_config_factory(f"faulty_shapes_{_fault}")(lambda f=_fault: _faulty_experiment(f))


@dataclasses.dataclass
class BrokenModelConfig(hyperparams.Config):
    task_names: Tuple[str, ...] = shapes.SHAPES


class _Broken(keras.Model):
    """A subclassed sub-model whose first call fails (the features are one tensor, not a dict)."""

    def call(self, features, training=None):
        return features["points"]


@model_factory.register_model_cls(BrokenModelConfig)
class BrokenModel(base_model.MultiTaskBaseModel):
    def __init__(self, config, init_checkpoint="", **kwargs):
        self._names = config.task_names
        super().__init__(init_checkpoint=init_checkpoint, **kwargs)

    def _instantiate_sub_tasks(self):
        return {name: _Broken(name=name) for name in self._names}


@exp_factory.register_config_factory("shapes_broken_model")
def _shapes_broken_model():
    config = shapes.shapes()
    config.task.model = BrokenModelConfig()
    return config


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_bad_data_is_one_line_naming_task_split_and_problem(fault):
    params = _faulty_experiment(fault)
    mt = multitask.MultiTask.from_config(params.task)
    with pytest.raises(preflight.DataError, match=FAULTS[fault]) as error:
        preflight.check_data(mt, model_factory.build_model(params.task))
    assert "\n" not in str(error.value) and "{{function_node" not in str(error.value)


def test_good_data_pass_and_validation_split_is_checked():
    params = shapes.shapes()
    preflight.check_data(multitask.MultiTask.from_config(params.task), model_factory.build_model(params.task),
                         ("train", "validation"))


def _digest(directory):
    return {
        os.path.relpath(os.path.join(root, name), directory):
            (hashlib.sha256(open(os.path.join(root, name), "rb").read()).hexdigest(),
             os.stat(os.path.join(root, name)).st_mtime_ns)
        for root, _, names in os.walk(directory) for name in names
    }


def test_failed_run_leaves_existing_model_dir_untouched(tmp_path):
    """A real run writes checkpoints; a rerun on bad data fails in one line and changes no file."""
    model_dir = str(tmp_path / "run")
    train.run(train.launcher_flags(model_dir=model_dir, params_override=TINY, mode="train"))
    before = _digest(model_dir)
    assert any(name.startswith("ckpt-2") for name in before) and "params.yaml" in before
    for fault in ("label_range", "empty"):
        with pytest.raises(train.UsageError, match=FAULTS[fault]) as error:
            train.run(train.launcher_flags(experiment=f"faulty_shapes_{fault}", model_dir=model_dir,
                                           params_override=TINY))
        assert "\n" not in str(error.value)
    with pytest.raises(train.UsageError, match=r"^Sub-model of task 'circle' \(_Broken\) failed on its first call, "
                                               r"on inputs float32\[None, 2\]: .*Error encountered: Only integers.*got "
                                               r"'points'; fix its call\(\) or build\(\)\.$"):
        train.run(train.launcher_flags(experiment="shapes_broken_model", model_dir=model_dir, params_override=TINY))
    with pytest.raises(train.UsageError, match="^--import_module: cannot import 'no_such_module'"):
        train.run(train.launcher_flags(model_dir=model_dir, params_override=TINY, import_module=["no_such_module"]))
    assert _digest(model_dir) == before


def test_unwritable_model_dir_is_a_usage_error():
    # /proc refuses new files even to root, which passes os.access checks.
    with pytest.raises(train.UsageError, match="--model_dir: '/proc/run' is not writable"):
        train.resolve_model_dir("/proc/run", "shapes")


ENDS = "task 'circle', train data: the dataset ends after 3 batches, but trainer.train_steps is 4 and a step reads one batch; repeat() it in build_inputs."


def test_train_data_shorter_than_train_steps_is_refused():
    params = _faulty_experiment("finite")
    mt, model = multitask.MultiTask.from_config(params.task), model_factory.build_model(params.task)
    with pytest.raises(preflight.DataError) as error:
        preflight.check_data(mt, model, train_steps=4)
    assert str(error.value) == ENDS
    preflight.check_data(mt, model, train_steps=3)  # Enough batches: no repeat() needed.


def test_finite_train_data_refused_before_anything_is_written(tmp_path):
    model_dir = tmp_path / "run"
    with pytest.raises(train.UsageError) as error:
        train.run(train.launcher_flags(experiment="faulty_shapes_finite", model_dir=str(model_dir),
                                       params_override="trainer.train_steps=4,trainer.steps_per_loop=2"))
    assert str(error.value) == ENDS
    assert not model_dir.exists()


@pytest.mark.parametrize("trainer_type", ["joint", "interleaving"])
def test_train_data_that_end_during_training_name_the_task(trainer_type, tmp_path, monkeypatch, capsys):
    """Unknown cardinality: found where the data end, one line naming the task; the launcher exits 1."""
    override = f"trainer.train_steps=12,trainer.steps_per_loop=2,trainer.trainer_type={trainer_type}"
    flags = train.launcher_flags(experiment="faulty_shapes_ends", model_dir=str(tmp_path / "run"), mode="train",
                                 params_override=override)
    monkeypatch.setattr(train, "FLAGS", flags)
    with pytest.raises(SystemExit) as exit_:
        train.main([])
    assert exit_.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == ["error: task 'circle': the train data ended during training, but the trainers read one "
                      "batch a step until trainer.train_steps; repeat() the dataset in build_inputs."]


def test_only_data_that_may_end_are_marked_and_an_unmarked_end_still_says_to_repeat():
    endless = tf.data.Dataset.range(4).repeat()
    assert input_distribution.mark_end(endless, "0") is endless
    assert list(input_distribution.mark_end(tf.data.Dataset.range(2), "0").take(2).as_numpy_iterator()) == [0, 1]
    inputs = input_distribution.TrainInputs({"a": endless}, ["a"])
    ended = inputs.ended_error(tf.errors.OutOfRangeError(None, None, "End of sequence"))
    assert str(ended) == ("The train data of a task ended during training (End of sequence), but the trainers read "
                          "one batch a step until trainer.train_steps; repeat() the dataset in build_inputs.")
    assert inputs.ended_error(tf.errors.InvalidArgumentError(None, None, "another error")) is None
