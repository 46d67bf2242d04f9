"""Tests of HeadTask: built from a head config and a registered reader; trains alone and in a MultiTask."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import task_factory

import head_toy
from multitask import base_trainer
from multitask import configs
from multitask import interleaving_trainer
from multitask import multitask as multitask_lib
from multitask import task_sampler
from multitask import train_lib
from multitask.modeling import head_task
from multitask.modeling import heads


def test_task_factory_builds_a_head_task_with_the_heads_loss_and_metrics():
    task = task_factory.get_task(head_toy.task_config("kind"))
    assert isinstance(task, head_task.HeadTask) and isinstance(task.head, heads.ClassificationHead)
    assert [metric.name for metric in task.build_metrics()] == ["accuracy"]
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(
        float(task.build_losses(np.array([0, -1]), logits)), float(task.head.loss(np.array([0]), logits[:1]))
    )


def test_build_inputs_takes_the_tasks_own_labels():
    features, labels = head_toy.arrays()
    for name in ("kind", "size"):
        task = head_task.HeadTask(head_toy.task_config(name))
        batch_features, batch_labels = next(iter(task.build_inputs(task.task_config.validation_data)))
        np.testing.assert_array_equal(batch_features, features[:8])
        np.testing.assert_array_equal(batch_labels, labels[name][:8])
    config = head_toy.task_config("kind")
    config.label_key = "size"
    _, size = next(iter(head_task.HeadTask(config).build_inputs(config.validation_data)))
    np.testing.assert_array_equal(size, labels["size"][:8])


def test_bad_configs_fail_before_training_with_clear_errors():
    config = head_toy.task_config("kind")
    config.label_key = "colour"
    task = head_task.HeadTask(config)
    with pytest.raises(KeyError, match=r"\['kind', 'size'\], not 'colour'"):
        task.build_inputs(config.validation_data)
    with pytest.raises(ValueError, match="no registered shared-input reader; registered: .*PartialDataConfig"):
        task.build_inputs(cfg.DataConfig())
    with pytest.raises(ValueError, match="task.encoder is not set.*head_toy_dense"):
        head_task.HeadTask(head_task.HeadTaskConfig(name="x", head={"type": "binary"})).build_model()
    with pytest.raises(ValueError, match="does not take margin"):
        head_task.HeadTask(head_task.HeadTaskConfig(name="x", head={"type": "binary", "margin": 1.0}))


def test_head_task_trains_alone(tmp_path):
    params = cfg.ExperimentConfig(
        task=head_toy.task_config("kind"),
        trainer=cfg.TrainerConfig(
            train_steps=4, steps_per_loop=2, summary_interval=2, checkpoint_interval=4,
            validation_interval=4, validation_steps=-1,
            optimizer_config=cfg.OptimizationConfig(
                {"optimizer": {"type": "sgd"}, "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.1}}}
            ),
        ),
    )
    task = task_factory.get_task(params.task)
    model = task.build_model()
    before = [v.numpy().copy() for v in model.trainable_variables]
    _, logs = train_lib.run_experiment(
        distribution_strategy=tf.distribute.get_strategy(), task=task, model=model, mode="train_and_eval",
        params=params, model_dir=str(tmp_path), run_post_eval=True,
    )
    assert set(logs["kind"]) == {"validation_loss", "accuracy"}
    assert np.isfinite(logs["kind"]["validation_loss"])
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


@pytest.mark.parametrize("trainer_type", ["joint", "interleaving"])
def test_head_tasks_train_in_a_multi_task(trainer_type):
    multi_task = multitask_lib.MultiTask.from_config(
        configs.MultiTaskConfig(
            task_routines=tuple(
                configs.TaskRoutine(task_name=name, task_config=head_toy.task_config(name)) for name in ("kind", "size")
            )
        )
    )
    model = head_toy.model()
    before = [v.numpy().copy() for v in model.trainable_variables]
    if trainer_type == "joint":
        shared = head_toy.PartialDataConfig(repeat=True)
        trainer = base_trainer.MultiTaskBaseTrainer(
            multi_task, model, keras.optimizers.SGD(0.1),
            train_datasets=lambda input_context=None: head_toy.partial_inputs(shared, input_context),
        )
    else:
        trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
            multi_task, model, keras.optimizers.SGD(0.1), task_sampler.UniformTaskSampler(multi_task.task_weights)
        )
    logs = trainer.train(tf.constant(6))
    assert set(logs["kind"]) >= {"training_loss", "accuracy"} and set(logs["size"]) >= {"training_loss", "mae", "rmse"}
    assert all(np.isfinite(logs[name]["training_loss"]) for name in ("kind", "size"))
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
