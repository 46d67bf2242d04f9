"""Registers the `interactions` experiment with Model Garden's exp_factory."""
from official.core import config_definitions as cfg
from official.core import exp_factory

from multitask import configs
from my_project import model
from my_project import tasks


@exp_factory.register_config_factory("interactions")
def interactions() -> configs.MultiTaskExperimentConfig:
    """Rating and click, trained jointly over one shared tower."""
    routines = tuple(
        configs.TaskRoutine(task_name=target, task_config=tasks.InteractionsTaskConfig(name=target, target=target))
        for target in tasks.TARGETS)
    return configs.MultiTaskExperimentConfig(
        task=configs.MultiTaskConfig(model=model.InteractionsModelConfig(task_names=tasks.TARGETS),
                                     task_routines=routines),
        trainer=configs.MultiTaskTrainerConfig(
            trainer_type="joint",
            optimizer_config=cfg.OptimizationConfig({
                "optimizer": {"type": "adam"},
                "learning_rate": {"type": "constant", "constant": {"learning_rate": 0.01}},
            }),
            train_steps=600, steps_per_loop=100, summary_interval=100, validation_interval=200,
            checkpoint_interval=200, validation_steps=-1),
        runtime=configs.MultiTaskRuntimeConfig(seed=0),  # Reproducible: the same numbers on every run.
    )
