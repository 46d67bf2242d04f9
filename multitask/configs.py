"""Configuration dataclasses for multi-task training and evaluation.

The names and fields mirror Model Garden's `official.modeling.multitask.configs`
so that YAML files and `--params_override` strings written for it keep working.
All classes are `official.modeling.hyperparams` configs: typed, YAML
overridable, and validated by `validate()` before anything runs.

The task sampler's configs live in `sampling_configs`, those of model
selection and early stopping in `selection_configs`; this module re-exports
them, so `configs.TaskSamplingConfig` and the like keep working. Open blocks
(`WeightingConfig`) are `open_config.OpenConfig`s.
"""
import dataclasses
from typing import Optional, Tuple

from official.core import config_definitions as cfg
from official.modeling import hyperparams

from multitask import open_config
from multitask import task_knobs
# Re-exported, so that `configs.X` names every config class.
from multitask.sampling_configs import SAMPLER_TYPES  # pylint: disable=unused-import
from multitask.sampling_configs import AnnealingSampleConfig  # pylint: disable=unused-import
from multitask.sampling_configs import EpochShuffledSampleConfig  # pylint: disable=unused-import
from multitask.sampling_configs import ProportionalSampleConfig  # pylint: disable=unused-import
from multitask.sampling_configs import TaskSamplingConfig
from multitask.sampling_configs import TemperatureSampleConfig  # pylint: disable=unused-import
from multitask.selection_configs import EarlyStoppingConfig
from multitask.selection_configs import ModelSelectionConfig

TRAINER_TYPES = ("joint", "interleaving")


@dataclasses.dataclass
class LossWeightScheduleConfig(hyperparams.Config):
    """A factor on a task's loss weight over the global step.

    Attributes:
      type: "" (none: factor 1), "piecewise" (`values[i]` from
        `boundaries[i-1]` on; one more value than boundaries) or "linear"
        (through the points `(boundaries[i], values[i])`, constant outside).
      boundaries: Global steps, strictly increasing.
      values: Factors, >= 0.
    """

    type: str = ""
    boundaries: Tuple[int, ...] = ()
    values: Tuple[float, ...] = ()


@dataclasses.dataclass
class TaskRoutine(hyperparams.Config):
    """One task of a multi-task experiment.

    Attributes:
      task_name: The task's name; defaults to `task_config.name`.
      task_config: The task's own `TaskConfig` (the one it trains alone with).
      eval_steps: Evaluation steps for this task; None or -1 means the whole
        validation set.
      task_weight: Loss weight in the joint trainer and sampling weight in the
        interleaving trainer (Model Garden's meaning); the fallback of
        `loss_weight` and `sampling_weight`.
      loss_weight: The joint trainer's loss weight; None uses `task_weight`.
      sampling_weight: The interleaving sampler's weight; None uses `task_weight`.
      learning_rate_multiplier: Scales the updates of the task's own variables
        (joint trainer) or of every variable its step updates (interleaving
        trainer); None means 1 (Model Garden's task_weight never changes the
        learning rate, so it is not the fallback).
      loss_weight_schedule: Multiplies the loss weight by a factor over the
        global step (e.g. a linear ramp).
      enabled: False starts the task disabled (`MultiTask.enable_task` turns
        it on later).
      start_step: The global step from which the task trains.
      stop_step: The global step from which it no longer trains; None: never.
      early_stopping: Per-task early stopping (train_and_eval mode).
      optimizer_config: The task's own optimizer (interleaving: its whole step; joint: its own variables);
        None uses `trainer.optimizer_config`.
    """

    task_name: str = ""
    task_config: Optional[cfg.TaskConfig] = None
    eval_steps: Optional[int] = None
    task_weight: Optional[float] = 1.0
    loss_weight: Optional[float] = None
    sampling_weight: Optional[float] = None
    learning_rate_multiplier: Optional[float] = None
    loss_weight_schedule: LossWeightScheduleConfig = dataclasses.field(
        default_factory=LossWeightScheduleConfig
    )
    enabled: bool = True
    start_step: int = 0
    stop_step: Optional[int] = None
    early_stopping: EarlyStoppingConfig = dataclasses.field(default_factory=EarlyStoppingConfig)
    optimizer_config: Optional[cfg.OptimizationConfig] = None

    def resolved_name(self) -> str:
        """Returns `task_name`, falling back to `task_config.name`."""
        return self.task_name or (self.task_config.name if self.task_config else "") or ""


@dataclasses.dataclass
class MultiTaskConfig(hyperparams.Config):
    """The tasks of a multi-task experiment and their shared model.

    Attributes:
      init_checkpoint: Checkpoint (file or directory) to warm-start the
        multi-task model from, read by the model's `initialize()`.
      model: The multi-task model's own config, if it has one.
      task_routines: One `TaskRoutine` per task.
      shared_train_data: When set, the joint trainer reads one dataset of
        `(features, {task: labels})` built from it (see `input_factory`)
        instead of each task's own train_data.
      frozen_parts: Parts of the model frozen from the start, by the names of
        its `parts` (for an `EncoderHeadsModel`: "encoder" or a task name,
        meaning its head); `MultiTaskBaseModel.unfreeze` resumes training one.

    An override may also hold `tasks`, `{task_name: {routine field: value}}`,
    which merges into the routine of that name (see `task_knobs`).
    """

    init_checkpoint: str = ""
    model: Optional[hyperparams.Config] = None
    task_routines: Tuple[TaskRoutine, ...] = ()
    shared_train_data: Optional[cfg.DataConfig] = None
    frozen_parts: Tuple[str, ...] = ()

    def _override(self, override_dict, is_strict=True):
        override_dict = dict(override_dict)
        by_name = override_dict.pop(task_knobs.TASKS_KEY, None)
        super()._override(override_dict, is_strict)
        if by_name is not None:
            task_knobs.merge(self.task_routines, by_name)

    def validate(self):
        super().validate()
        validate_task_routines(self.task_routines, "task.task_routines")
        if self.model is not None:
            self.model.validate()


class WeightingConfig(open_config.OpenConfig):
    """A task-balancing method of `multitask.weighting` for the joint trainer.

    `type` names the method ("" keeps Model Garden's sum of task_weight *
    loss); the method's hyper-parameters sit next to it, flat, as in
    `{type: mgda, normalization: l2}` or
    `--params_override='trainer.weighting.type=mgda,trainer.weighting.normalization=loss+'`.
    Unset ones take the method's default.

    The block is an `open_config.OpenConfig`, not one field per
    hyper-parameter of every method: it takes any key, so a method added with
    `register_weighting` (in this package or a plugin) needs no change here.
    `validate()` (which the launcher runs before anything is built or
    written) checks the keys against the method's constructor through
    `weighting.WEIGHTINGS.check`: a key the method does not take is a
    ValueError naming `trainer.weighting` and the keys it takes. Setting
    another `type` replaces the whole block, so a method does not inherit
    the previous one's hyper-parameters; a key set to null counts as unset.
    In Python, `WeightingConfig(type="mgda", normalization="l2")`.
    """

    def __init__(self, default_params=None, restrictions=None, **hyperparameters):
        """Creates the block from a mapping and/or keywords; `type` defaults to ""."""
        params = {"type": "", **(default_params or {}), **hyperparameters}
        super().__init__(default_params=params, restrictions=restrictions)

    def hyperparameters(self) -> dict:
        """The hyper-parameters that are set, by name."""
        return {key: value for key, value in self.as_dict().items() if key != "type" and value is not None}

    def validate(self):
        if self.type:
            # Imported here: the weighting package pulls in TensorFlow.
            from multitask import weighting  # pylint: disable=g-import-not-at-top

            weighting.WEIGHTINGS.check(dict(self.hyperparameters(), type=self.type), "trainer.weighting",
                                       reserved=weighting.registry.RESERVED_ARGUMENTS)
        elif self.hyperparameters():
            raise ValueError(
                f"trainer.weighting sets {', '.join(sorted(self.hyperparameters()))} without a type."
            )
        super().validate()


@dataclasses.dataclass
class MultiTaskTrainerConfig(cfg.TrainerConfig):
    """Model Garden's `TrainerConfig` plus the choice of multi-task trainer.

    Attributes:
      trainer_type: "joint" (one backward pass over the weighted task losses) or
        "interleaving" (one sampled task per step).
      task_sampler: The interleaving trainer's task sampler.
      weighting: The joint trainer's task-balancing method.
      rep_grad: Balance gradients with respect to the shared representation
        instead of the shared parameters (joint trainer, shared input).
      model_selection: The aggregate score over tasks (best checkpoint, early
        stopping of the whole run).
      shared_learning_rate_multiplier: Joint trainer: scales the updates of
        the shared variables (the routines' learning_rate_multiplier scale
        each task's own); None leaves them alone at no cost.
      successive_regularization: Strength λ of the pull of the shared
        variables towards their values at the start of the current training
        phase (HMTL); 0 is off. See `successive_regularization`.
      on_nonfinite: A step with a NaN or Inf task loss or gradient never
        updates the model; "raise" then stops the run naming the task and
        the step (no checkpoint is written after it), "skip" counts the step
        (`nonfinite_steps`) and goes on. See `multitask.training.nonfinite`.
    """

    trainer_type: str = "interleaving"
    task_sampler: TaskSamplingConfig = dataclasses.field(
        default_factory=lambda: TaskSamplingConfig(type="proportional")
    )
    weighting: WeightingConfig = dataclasses.field(default_factory=WeightingConfig)
    rep_grad: bool = False
    model_selection: ModelSelectionConfig = dataclasses.field(default_factory=ModelSelectionConfig)
    shared_learning_rate_multiplier: Optional[float] = None
    successive_regularization: float = 0.0
    on_nonfinite: str = "raise"

    def validate(self):
        # Own checks first: the base validate() exports the whole config, which
        # fails with a less helpful message on an unknown one-of type.
        if self.trainer_type not in TRAINER_TYPES:
            raise ValueError(
                f"trainer.trainer_type is {self.trainer_type!r}; allowed: "
                f"{', '.join(TRAINER_TYPES)}."
            )
        from multitask.training import nonfinite  # pylint: disable=g-import-not-at-top  (pulls in TensorFlow)

        nonfinite.check_policy(self.on_nonfinite)
        if self.trainer_type == "interleaving":
            self.task_sampler.validate()
            if self.weighting.type or self.rep_grad:
                raise ValueError(
                    "trainer.weighting and trainer.rep_grad balance the joint trainer's tasks; with "
                    "trainer_type 'interleaving' one task trains per step. Use trainer_type 'joint'."
                )
        self.weighting.validate()
        if self.rep_grad and not self.weighting.type:
            raise ValueError("trainer.rep_grad needs a trainer.weighting.type.")
        if self.trainer_type == "interleaving" and self.shared_learning_rate_multiplier is not None:
            raise ValueError(
                "trainer.shared_learning_rate_multiplier is the joint trainer's; the interleaving trainer "
                "takes a learning_rate_multiplier or an optimizer_config per task routine."
            )
        if self.successive_regularization < 0:
            raise ValueError(f"trainer.successive_regularization is {self.successive_regularization}; it must be >= 0.")
        if self.model_selection.method:
            from multitask import model_selection  # pylint: disable=g-import-not-at-top

            model_selection.build_selector(self.model_selection)
        elif self.model_selection.patience:
            raise ValueError("trainer.model_selection.patience needs a trainer.model_selection.method.")
        super().validate()


@dataclasses.dataclass
class MultiTaskRuntimeConfig(cfg.RuntimeConfig):
    """Model Garden's `RuntimeConfig` plus a seed.

    Attributes:
      seed: When set, the launcher seeds Python, NumPy, TensorFlow and Keras
        (`keras.utils.set_random_seed`) before building anything, so weight
        initialisation repeats; data shuffles, task sampling and random
        weighting methods have their own seeds in their configs.
    """

    seed: Optional[int] = None


@dataclasses.dataclass
class MultiTaskExperimentConfig(hyperparams.Config):
    """An experiment config for multi-task training and multi-task evaluation."""

    task: MultiTaskConfig = dataclasses.field(default_factory=MultiTaskConfig)
    trainer: MultiTaskTrainerConfig = dataclasses.field(default_factory=MultiTaskTrainerConfig)
    runtime: MultiTaskRuntimeConfig = dataclasses.field(default_factory=MultiTaskRuntimeConfig)

    def __post_init__(self, *args, **kwargs):
        super().__post_init__(*args, **kwargs)
        if not isinstance(self.runtime, MultiTaskRuntimeConfig):
            # An experiment may pass Model Garden's plain RuntimeConfig.
            self.runtime = MultiTaskRuntimeConfig(**self.runtime.as_dict())

    def validate(self):
        self.task.validate()
        self.trainer.validate()
        super().validate()


@dataclasses.dataclass
class MultiEvalExperimentConfig(cfg.ExperimentConfig):
    """An experiment config for single-task training and multi-task evaluation.

    Attributes:
      eval_tasks: The tasks to evaluate the trained model on.
    """

    eval_tasks: Tuple[TaskRoutine, ...] = ()

    def validate(self):
        super().validate()
        validate_task_routines(self.eval_tasks, "eval_tasks")


def validate_task_routines(routines, field: str):
    """Checks that every routine has a config and a unique name.

    Args:
      routines: A sequence of `TaskRoutine`.
      field: The config path of `routines`, used in error messages.

    Raises:
      ValueError: A routine has no task_config, no name, a duplicated name, a
        negative weight or multiplier, or a malformed loss_weight_schedule.
    """
    # Imported here: task_control pulls in TensorFlow.
    from multitask import task_control  # pylint: disable=g-import-not-at-top

    names = set()
    for index, routine in enumerate(routines):
        if routine.task_config is None:
            raise ValueError(f"{field}[{index}].task_config is not set.")
        name = routine.resolved_name()
        if not name:
            raise ValueError(
                f"{field}[{index}] has no task_name and its task_config has no name; "
                "set one of them."
            )
        if name in names:
            raise ValueError(f"{field}: duplicated task name {name!r}; every task needs its own name.")
        names.add(name)
        for knob in ("task_weight", "loss_weight", "sampling_weight", "learning_rate_multiplier"):
            value = getattr(routine, knob, None)
            if value is not None and not 0 <= value < float("inf"):
                raise ValueError(f"{field}[{index}].{knob} is {value!r}; it must be a finite number >= 0.")
        schedule = getattr(routine, "loss_weight_schedule", None)
        task_control.validate_schedule(schedule, f"{field}[{index}].loss_weight_schedule")
        start, stop = getattr(routine, "start_step", 0) or 0, getattr(routine, "stop_step", None)
        if start < 0 or (stop is not None and stop <= start):
            raise ValueError(
                f"{field}[{index}]: start_step {start} and stop_step {stop} must satisfy 0 <= start_step < stop_step."
            )
        stopping = getattr(routine, "early_stopping", None)
        if stopping is not None:
            if stopping.mode not in ("higher", "lower"):
                raise ValueError(f"{field}[{index}].early_stopping.mode is {stopping.mode!r}; allowed: higher, lower.")
            if stopping.patience < 1:
                raise ValueError(f"{field}[{index}].early_stopping.patience is {stopping.patience}; it must be >= 1.")
