"""Tests for the config-built SharedEncoderModel: configs, plugins from YAML, single pass, warm start."""
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import modeling_toy
from multitask import base_model
from multitask import configs
from multitask import interleaving_trainer
from multitask import model_factory
from multitask import task_sampler
from multitask import train
from multitask.modeling import encoders
from multitask.modeling import shared_encoder_model as sem


def _experiment(**model_params):
    """A joint experiment over the two label tasks with a config-built model."""
    model = modeling_toy.model_config(**model_params)
    return configs.MultiTaskExperimentConfig(task=configs.MultiTaskConfig(
        model=model,
        task_routines=tuple(configs.TaskRoutine(task_name=name, task_config=modeling_toy.LabelTaskConfig(name=name))
                            for name in modeling_toy.TASKS)))


def test_model_factory_builds_it_with_a_sub_model_per_task():
    model = model_factory.build_model(_experiment().task)
    assert isinstance(model, sem.SharedEncoderModel) and isinstance(model, base_model.EncoderHeadsModel)
    assert set(model.sub_tasks) == {"a", "b"}
    assert all(isinstance(m, keras.Model) for m in model.sub_tasks.values())
    assert model.checkpoint_items == {"encoder": model.encoders[0]}
    # Built on creation: encoder (2 Dense) and two heads.
    assert len(model.trainable_variables) == 4 + 2 * 2
    x = modeling_toy.features("vector", 3)
    representation = model.encode(x)
    np.testing.assert_allclose(model.task_outputs("b", representation), model.sub_tasks["b"](x), rtol=1e-6)


def test_config_errors_name_the_field_and_the_choices():
    with pytest.raises(ValueError, match=r"heads.a.type is 'softmax', an unknown head; registered: .*test_logits"):
        modeling_toy.model_config(heads={"a": {"type": "softmax"}}).validate()
    with pytest.raises(ValueError, match=r"heads.a: head 'test_logits' does not take classes; it takes: .*num_classes"):
        modeling_toy.model_config(heads={"a": {"type": "test_logits", "classes": 3}}).validate()
    with pytest.raises(ValueError, match="heads is empty"):
        sem.SharedEncoderModelConfig(input_shape=(4,)).validate()
    with pytest.raises(ValueError, match="exactly one of input_shape"):
        modeling_toy.model_config(input_shapes={"x": [4]}).validate()
    with pytest.raises(ValueError, match="input_shape is"):
        modeling_toy.model_config(input_shape=(0,)).validate()
    with pytest.raises(ValueError, match="needs a `type`"):
        modeling_toy.model_config(encoder={"type": ""}).validate()
    with pytest.raises(ValueError, match="cannot import 'no_such_plugin'"):
        modeling_toy.model_config(plugins=("no_such_plugin",)).validate()
    # The experiment's validate() reaches the model config.
    experiment = _experiment(encoder={"type": "nope"})
    with pytest.raises(ValueError, match="task.model.encoder.type is 'nope'"):
        experiment.validate()


def test_open_blocks_take_plugin_keys_under_strict_overrides_and_reset_on_a_new_type():
    config = modeling_toy.model_config()
    config.override({"encoder": {"hidden_sizes": [3], "dropout": 0.1}}, is_strict=True)
    assert config.encoder.as_dict() == {"type": "mlp", "hidden_sizes": [3], "dropout": 0.1}
    config.override({"encoder": {"type": "my_plugin", "units": 2}}, is_strict=True)
    assert config.encoder.as_dict() == {"type": "my_plugin", "units": 2}
    config.override({"heads": {"c": {"type": "test_logits"}}}, is_strict=True)
    assert set(config.heads.as_dict()) == {"a", "b", "c"}
    # The model's own fields stay strict.
    with pytest.raises(KeyError, match="encodr"):
        config.override({"encodr": {}}, is_strict=True)
    config.override({"encoder": {"type": "multimodal", "modalities": {"x": {"type": "mlp", "hidden_sizes": [2]}}}})
    config.override({"encoder": {"modalities": {"x": {"type": "cnn"}, "y": {"type": "mlp"}}}})
    assert config.encoder.as_dict()["modalities"] == {"x": {"type": "cnn"}, "y": {"type": "mlp"}}


PLUGIN = '''
import keras
from multitask.modeling import registry


@registry.register_encoder("yaml_plugin_encoder")
class Twice(keras.layers.Layer):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)

    def call(self, inputs):
        return 2.0 * self.dense(inputs)


@registry.register_head("yaml_plugin_head")
def plugin_head(num_classes=2, name=None):
    return keras.layers.Dense(num_classes, name=name)
'''


def test_plugin_encoder_and_head_from_a_yaml_config_file(tmp_path, monkeypatch):
    (tmp_path / "yaml_plugin_blocks.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    config_file = tmp_path / "plugin.yaml"
    config_file.write_text(textwrap.dedent("""\
        task:
          model:
            plugins: [yaml_plugin_blocks]
            encoder: {type: yaml_plugin_encoder, units: 5}
            architecture: {type: mmoe, num_experts: 2, expert_units: [3]}
            heads:
              a: {type: yaml_plugin_head, num_classes: 2}
              b: {type: test_logits, num_classes: 2}
        """))
    params = _experiment()
    train.apply_override(params, str(config_file), "--config_file")
    params.validate()
    model = model_factory.build_model(params.task)
    assert type(model.encoders[0]).__name__ == "Twice" and model.encoders[0].dense.units == 5
    assert model.heads["a"].head.units == 2
    trainer, _ = modeling_toy.trainer(tf.distribute.get_strategy(), lambda: model)
    assert np.isfinite(float(trainer.train(tf.constant(1))["total_loss"]))

    # A misspelt key of a built-in block is refused before anything is built.
    typo = tmp_path / "typo.yaml"
    typo.write_text("task: {model: {architecture: {type: mmoe, num_expert: 2}}}\n")
    params = _experiment()
    train.apply_override(params, str(typo), "--config_file")
    with pytest.raises(ValueError, match=r"task.model.architecture: architecture 'mmoe' does not take num_expert"):
        params.validate()
    with pytest.raises(train.UsageError, match="unknown key 'task.model.encodr'"):
        train.apply_override(_experiment(), "task.model.encodr.type=mlp", "--params_override")


def test_encoder_runs_once_per_joint_step_on_shared_input(two_cpu_strategy):
    def model_fn():
        return sem.SharedEncoderModel(modeling_toy.model_config(encoder={"type": "counting_mlp"}))

    trainer, model = modeling_toy.trainer(two_cpu_strategy, model_fn)
    calls = model.encoders[0].calls
    calls.assign(0.0)
    trainer.train(tf.constant(3))
    assert float(calls.numpy()) == 3.0
    # With one dataset per task, each task's sub-model runs the encoder.
    shared = modeling_toy.shared_dataset("vector")
    per_task = {name: shared.map(lambda x, y, name=name: (x, y[name])) for name in modeling_toy.TASKS}
    with two_cpu_strategy.scope():
        model = model_fn()
        trainer = modeling_toy.base_trainer.MultiTaskBaseTrainer(
            modeling_toy.multi_task(), model, keras.optimizers.Adam(0.01), train_datasets=per_task)
    model.encoders[0].calls.assign(0.0)
    trainer.train(tf.constant(3))
    assert float(model.encoders[0].calls.numpy()) == 6.0


def test_python_encoder_and_heads_replace_the_config_blocks():
    backbone = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])
    heads = {"left": keras.layers.Dense(2), "right": keras.layers.Dense(5)}
    model = sem.SharedEncoderModel(modeling_toy.model_config(architecture={"type": "cross_stitch"}),
                                   encoder=backbone, heads=heads)
    assert set(model.sub_tasks) == {"left", "right"}
    columns = model.encoders
    assert columns[0] is backbone and columns[1] is not backbone
    assert not {id(v) for v in columns[0].variables} & {id(v) for v in columns[1].variables}
    assert model.sub_tasks["right"](modeling_toy.features("vector", 2)).shape == (2, 5)
    with pytest.raises(ValueError, match="not a keras layer"):
        sem.SharedEncoderModel(modeling_toy.model_config(), heads={"a": lambda x: x})


def test_warm_start_restores_the_encoder_and_every_cross_stitch_column(tmp_path):
    single = encoders.MLPEncoder(hidden_sizes=[6, 5])
    single(modeling_toy.features("vector", 1))
    path = tf.train.Checkpoint(encoder=single).save(str(tmp_path / "single"))
    for architecture in ("hard_sharing", "cross_stitch"):
        model = sem.SharedEncoderModel(modeling_toy.model_config(architecture={"type": architecture}),
                                       init_checkpoint=path)
        model.initialize()
        for encoder in model.encoders:
            for restored, saved in zip(encoder.variables, single.variables):
                np.testing.assert_array_equal(restored.numpy(), saved.numpy())


@pytest.mark.parametrize("architecture, encoder", [
    ("hard_sharing", {"type": "multimodal", "modalities": {"x": {"type": "mlp"}, "y": {"type": "mlp"}}}),
    ("hard_sharing", {"type": "hierarchical", "modalities": {"x": {"type": "mlp"}, "y": {"type": "mlp"}},
                      "groups": {"g": ["x"], "h": ["y"]}}),
    ("cross_stitch", None), ("mmoe", None), ("dselect_k", None), ("cgc", None), ("ple", None), ("mtan", None),
])
def test_checkpoints_hold_every_variable(architecture, encoder, tmp_path):
    """Layers in list and dict attributes are saved too (Keras 3 alone leaves them out)."""
    kind = "vector" if encoder is None else "modalities"
    model = sem.SharedEncoderModel(modeling_toy.model_config(kind, encoder=encoder,
                                                             architecture={"type": architecture}))
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(saved) == len(model.variables)
    fresh = sem.SharedEncoderModel(modeling_toy.model_config(kind, encoder=encoder,
                                                             architecture={"type": architecture}))
    tf.train.Checkpoint(model=fresh).read(path).expect_partial().assert_existing_objects_matched()
    for restored, original in zip(fresh.variables, model.variables):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())


def test_interleaving_trainer_trains_each_sampled_tasks_sub_model():
    shared = modeling_toy.shared_dataset("vector")
    per_task = {name: shared.map(lambda x, y, name=name: (x, y[name])) for name in modeling_toy.TASKS}
    model = sem.SharedEncoderModel(modeling_toy.model_config(architecture={"type": "ple", "expert_units": [3]}))
    trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
        modeling_toy.multi_task(), model, keras.optimizers.Adam(0.01),
        task_sampler.UniformTaskSampler({name: 1.0 for name in modeling_toy.TASKS}), train_datasets=per_task)
    logs = trainer.train(tf.constant(4))
    assert sum(int(logs[name]["task_steps"]) for name in modeling_toy.TASKS) == 4
