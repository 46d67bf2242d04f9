"""MultiTaskBaseTrainer: the joint multi-task trainer, an orbit StandardTrainer.

Every step reads one batch of every task and makes one update from the
active tasks' weighted losses (`training.joint_step`): their forward passes,
each loss times its loss weight, and a weighting method that turns them into
one update (Model Garden's plain sum is the `static` method with unit
weights). The steps of a loop run inside one `tf.function` (orbit's
`tf.while_loop`), under the `tf.distribute` strategy current when the trainer
is created.

Which tasks train is fixed for each stretch of a loop (`task_control.LoopPlan`):
`train(num_steps)` cuts the loop where a step window opens or closes and
traces one loop per plan and set of trainable variables (frozen parts may
change between calls). A task that is off takes no forward or backward pass
and updates no metric or variable; its batches are still read, so the data
stays aligned with the global step. Unbuilt sub-models are built from their
train data's spec when the trainer is created (`multitask.model_inputs`).
"""
import functools
from typing import Any, Dict, Mapping, Optional, Union

from absl import logging
import gin
import keras
import orbit
import tensorflow as tf

from multitask import base_model
from multitask import multitask as multitask_lib
from multitask import results as results_lib
from multitask import successive_regularization as successive_lib
from multitask.core import runtime
from multitask.training import checkpoint_items
from multitask.training import gradients
from multitask.training import input_distribution
from multitask.training import joint_step
from multitask.training import nonfinite
from multitask.training import task_optimizers as task_optimizers_lib
from multitask.training import train_logs
from multitask.training import update_guard
from multitask.weighting import base as weighting_base


@gin.configurable
class MultiTaskBaseTrainer(orbit.StandardTrainer):
    """Trains all tasks together: one update from the active tasks' weighted losses."""

    # Whether the steps are joint steps (else one task's own step).
    _joint = True
    # Whether the trainer logs each task's loss weight and its sampling weight.
    _logs_loss_weights = True
    _logs_sampling_weights = False

    def __init__(
        self,
        multi_task: multitask_lib.MultiTask,
        multi_task_model: Union[keras.Model, base_model.MultiTaskBaseModel],
        optimizer: keras.optimizers.Optimizer,
        trainer_options: Optional[orbit.StandardTrainerOptions] = None,
        train_datasets=None,
        weighting: Optional[weighting_base.Weighting] = None,
        rep_grad: bool = False,
        shared_learning_rate_multiplier: Optional[float] = None,
        successive_regularization: float = 0.0,
        on_nonfinite: str = "raise",
        jit_compile: bool = False,
        task_optimizers: Optional[Mapping[str, keras.optimizers.Optimizer]] = None,
    ):
        """Creates the trainer; call it inside `strategy.scope()`.

        Args:
          multi_task: The tasks, their weights and their `control`.
          multi_task_model: A `MultiTaskBaseModel`, or one keras.Model for all tasks.
          optimizer: A Keras 3 optimizer; under a float16 policy it is wrapped
            in a `keras.optimizers.LossScaleOptimizer` unless it is one.
          trainer_options: orbit options (default: a `tf.function` with a `tf.while_loop`).
          train_datasets: `{task_name: source}` or one source yielding
            `(features, {task_name: labels})` (see `training.input_distribution`).
            Defaults to each task's `build_inputs(task_config.train_data)`.
          weighting: A `multitask.weighting.Weighting` balancing the active
            tasks' weighted losses; None is Model Garden's sum of
            `loss_weight * loss`.
          rep_grad: Balance gradients with respect to the shared
            representation (a shared dataset and a model with `encode` /
            `task_outputs`, `base_model.encodes_once`).
          shared_learning_rate_multiplier: Scales the updates of the variables
            several tasks share, as each task's `learning_rate_multiplier`
            scales its own; None costs nothing, a number is kept in a
            checkpointed variable (`shared_learning_rate_multiplier`).
          successive_regularization: λ of HMTL's pull of the shared variables
            towards their values at the start of the phase; 0 is off.
          on_nonfinite: "raise" or "skip": what a step with a NaN or Inf loss
            or gradient does (it never updates a variable; see `training.nonfinite`).
          jit_compile: Compile each step's replica function with XLA (one
            replica; a TPUStrategy compiles its steps anyway).
          task_optimizers: `{task: optimizer}`: tasks whose own variables (their
            heads) an optimizer of their own updates, saved under
            "task_optimizers" (see `training.task_optimizers`).

        Raises:
          KeyError: A task has no sub-model, no train data, or an unknown task
            has an optimizer.
          ValueError: The model cannot be built, `checkpoint_items` reuse a
            reserved name, an unknown `on_nonfinite`, `jit_compile` with
            several replicas, task optimizers that cannot work, or a
            weighting / `rep_grad` / model / data combination that cannot
            work (`joint_step.check_weighting`).
        """
        self._strategy = tf.distribute.get_strategy()
        self._multi_task = multi_task
        self._multi_task_model = multi_task_model
        names = list(multi_task.tasks)
        base_model.check_tasks_in_model(multi_task_model, multi_task.tasks)
        if runtime.needs_loss_scaling() and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self._optimizer = optimizer
        self._global_step = orbit.utils.create_global_step()
        self._task_step_counters = checkpoint_items.task_step_counters(names)
        if train_datasets is None:
            train_datasets = {name: functools.partial(task.build_inputs, task.task_config.train_data)
                              for name, task in multi_task.tasks.items()}
        self._inputs = input_distribution.TrainInputs(
            train_datasets, names, {name: task.label_key for name, task in multi_task.tasks.items()})
        # Every variable must exist before the optimizer is built on them all.
        base_model.ensure_built(multi_task_model, names, self._inputs.features_spec)
        joint_step.check_weighting(weighting, rep_grad, len(names), multi_task_model, self._inputs.shared)
        single_pass_off = joint_step.single_pass_off(multi_task_model, self._inputs.shared)
        if self._joint and single_pass_off and len(names) > 1:
            logging.info("The joint step runs each task's model on its own: %s", single_pass_off)
        self._weighting = weighting
        self._balancer = weighting if weighting is not None else multi_task.default_weighting
        self._rep_grad = rep_grad
        # Frozen parts included, so that unfreezing them later needs no rebuild.
        optimizer.build(base_model.optimizer_variables(multi_task_model)
                        + list(self._balancer.trainable_variables))
        self._nonfinite = nonfinite.NonFiniteGuard(on_nonfinite, names)
        self._jit_compile = runtime.step_jit_compile(jit_compile, self._strategy)
        self._logs = train_logs.TrainLogs(multi_task.tasks, weighting, rep_grad)
        # Frozen parts included: a part unfrozen later is still scaled.
        shared, self._own_variables = gradients.split_variables(multi_task_model, names, frozen_included=True)
        self._task_optimizers = task_optimizers_lib.build_task_optimizers(
            task_optimizers, names, self._task_optimizer_variables, runtime.needs_loss_scaling(), self._joint)
        self._variable_optimizers = task_optimizers_lib.variable_owners(
            self._task_optimizers, self._task_optimizer_variables) if self._joint else {}
        self._scaling = update_guard.TaskUpdateScaling(
            optimizer, self._own_variables, shared, base_model.optimizer_variables(multi_task_model),
            shared_learning_rate_multiplier, self._task_optimizers)
        # Only what trains now: the pull must not move a frozen variable.
        self._successive = successive_lib.SuccessiveRegularization(
            gradients.split_variables(multi_task_model, names)[0], successive_regularization
        ) if successive_regularization else None
        self._checkpoint = checkpoint_items.build_checkpoint(
            multi_task_model, optimizer=optimizer, global_step=self._global_step,
            task_step_counters=self._task_step_counters, task_control=multi_task.control,
            nonfinite_steps=self._nonfinite.nonfinite_steps, weighting=weighting, task_optimizers=self._task_optimizers,
            shared_learning_rate_multiplier=self._scaling.shared_multiplier, successive_regularization=self._successive)
        self._trainable_signature = None
        self._train_loop_fns = {}  # One traced loop per (trainable variables, plan, guarded groups).
        self._loop_key = self._plan = self._guarded = None
        # The data is distributed at the first loop, after a checkpoint may have been restored.
        super().__init__(train_dataset=None, options=trainer_options or orbit.StandardTrainerOptions())

    strategy = property(lambda self: self._strategy)
    multi_task = property(lambda self: self._multi_task)
    multi_task_model = property(lambda self: self._multi_task_model)
    optimizer = property(lambda self: self._optimizer)
    global_step = property(lambda self: self._global_step)
    checkpoint = property(lambda self: self._checkpoint, doc="Model, optimizer, steps, task control and more.")
    training_losses = property(lambda self: self._logs.losses, doc="Per-task and total running loss means.")
    training_metrics = property(lambda self: self._logs.metrics, doc="Each task's `build_metrics(True)`.")
    on_nonfinite = property(lambda self: self._nonfinite.policy, doc='"raise" or "skip".')
    jit_compile = property(lambda self: self._jit_compile, doc="Whether replica steps are XLA-compiled.")
    successive_regularization = property(lambda self: self._successive, doc="None when off.")
    shared_learning_rate_multiplier = property(lambda self: self._scaling.shared_multiplier, doc="None unless given.")

    @tf.autograph.experimental.do_not_convert
    def task_optimizer(self, name: str) -> keras.optimizers.Optimizer:
        """The optimizer of task `name`'s own updates (its own, else the trainer's)."""
        return self._task_optimizers.get(name, self._optimizer)

    def _task_optimizer_variables(self, name: str):
        """The variables a task optimizer of task `name` updates: its own (frozen included)."""
        return self._own_variables[name]

    def task_step_counter(self, name: str) -> tf.Variable:
        """The number of steps that trained task `name`."""
        return self._task_step_counters[name]

    def compiled(self, replica_fn):
        """`replica_fn` as an XLA-compiled `tf.function` under `jit_compile`, else as is."""
        return tf.function(replica_fn, jit_compile=True) if self._jit_compile else replica_fn

    def _batches_consumed(self, name: Optional[str]) -> int:
        """Batches a source has yielded so far: one per global step (inactive tasks' too)."""
        del name
        return int(self._global_step.numpy())

    def train(self, num_steps: tf.Tensor) -> Optional[Dict[str, Any]]:
        """Runs `num_steps` steps: one traced loop per stretch with a fixed `LoopPlan`.

        Raises:
          TrainDataEndedError: A task's train data ended (it must repeat).
        """
        self.train_loop_begin()
        if self._train_iter is None:
            self._train_iter = tf.nest.map_structure(iter, self.train_dataset)
        remaining = int(num_steps)
        while remaining > 0:
            steps = self._select_train_loop(remaining)
            try:
                self._train_loop_fn(self._train_iter, tf.constant(steps, tf.int32))
            except (tf.errors.OutOfRangeError, tf.errors.InvalidArgumentError) as error:
                ended = self._inputs.ended_error(error)
                if ended is None:
                    raise
                raise ended from error
            remaining -= steps
        return self.train_loop_end()

    def train_loop_begin(self):
        """Resets the loop's metrics; distributes the train data on the first loop (after a restore).

        The data is distributed skipping the batches that the (restored) step
        counters say were trained on, so a resumed run with deterministic
        input pipelines sees the same batches as an uninterrupted one.
        """
        if self._successive is not None:
            self._successive.maybe_start_phase(self._multi_task.active_tasks)
        if self.train_dataset is None:
            self.train_dataset = self._inputs.distribute(
                self._strategy, self._batches_consumed, int(self._global_step.numpy()))
        variables = self._multi_task_model.trainable_variables
        signature = tuple(id(v) for v in variables)
        if signature != self._trainable_signature:
            if self._trainable_signature is not None:
                logging.info("The trainable variables changed (%d now).", len(variables))
            joint_step.check_shared_parameters(
                self._weighting, self._rep_grad, self._multi_task_model, list(self._multi_task.tasks))
            self._trainable_signature = signature
        self._logs.reset()

    def _select_train_loop(self, remaining: int) -> int:
        """Points orbit at the loop traced for the plan of now; returns the steps that plan holds."""
        control, step = self._multi_task.control, int(self._global_step.numpy())
        self._plan = control.loop_plan(step)
        self._guarded = self._scaling.groups_for(self._plan)
        steps = min(remaining, control.steps_until_change(step) or remaining)
        key = (self._trainable_signature, self._plan, self._guarded)
        if key != self._loop_key:
            self._loop_key = key
            self._train_loop_fn = self._train_loop_fns.get(key) or self.create_train_loop_fn()
            self._train_loop_fns[key] = self._train_loop_fn
        return steps

    def train_step(self, iterator_map):
        """One joint step over the plan's active tasks."""
        names, active = list(self._multi_task.tasks), list(self._plan.active)
        inputs = self._inputs.next(iterator_map, names)  # Every task's batch: the data stays aligned.
        if active:
            step = self._global_step.read_value()
            if not self._inputs.shared:
                inputs = {name: inputs[name] for name in active}
            before = self._scaling.snapshot(self._guarded)

            def run(reuse_weights: bool) -> None:
                with self._nonfinite.guarding(self._optimizer, *self._task_optimizers.values()):
                    flags = self._strategy.run(
                        self.compiled(lambda inputs: self._replica_step(inputs, step, active, reuse_weights)),
                        args=(inputs,))
                self._nonfinite.record(flags, step + 1)

            if self._reuses_weights():
                # Steps between recomputations: one backward pass, no per-task gradient.
                tf.cond(self._weighting.recomputes([names.index(name) for name in active]),
                        lambda: run(False), lambda: run(True))
            else:
                run(False)
            if self._successive is not None:
                self._successive.apply(self._optimizer.learning_rate)
            self._scaling.apply(before, self._multi_task.control)
        self._global_step.assign_add(1)
        for name in active:
            self._task_step_counters[name].assign_add(1)

    def _reuses_weights(self) -> bool:
        """Whether a gradient-level method's `recompute_every` lets steps reuse its weights."""
        weighting = self._weighting
        return (weighting is not None and weighting.recompute_every > 1
                and (self._rep_grad or not weighting.loss_level))

    def _replica_step(self, inputs, step, active, reuse_weights=False):
        task_inputs = self._inputs.task_inputs(inputs, active)
        logs = joint_step.train_step(
            self._multi_task, self._balancer, task_inputs, self._multi_task_model,
            self._optimizer, self._logs.metrics, step, shared_features=self._inputs.shared_features(inputs),
            rep_grad=self._rep_grad, variable_optimizers=self._variable_optimizers, reuse_weights=reuse_weights)
        # The labels weigh each task's loss in its "training_loss" mean (`train_logs`).
        self._logs.record_joint_step(active, logs, self._nonfinite.update_mean, task_inputs)
        return self._nonfinite.step_flags([logs.get(name, 0.0) for name in self._multi_task.tasks])

    def train_loop_end(self) -> Dict[str, Any]:
        """Returns the loop's means as Python numbers.

        `{task: {"training_loss", <metrics>, "task_steps", <control knobs in
        use: "loss_weight", "learning_rate_multiplier", "sampling_weight",
        "active">, <weighting diagnostics>}, "total_loss", "learning_rate"}`,
        and "nonfinite_steps" under `on_nonfinite="skip"`.

        Raises:
          NonFiniteLossError: A step had a NaN or Inf loss or gradient and
            `on_nonfinite` is "raise" (orbit then saves no checkpoint).
        """
        self._nonfinite.check()
        result = {}
        control_logs = self._multi_task.control.logs(
            self._global_step, self._logs_loss_weights, self._logs_sampling_weights)
        for name in self._multi_task.tasks:
            extra = {"task_steps": self._task_step_counters[name].read_value()}
            if name in self._task_optimizers:
                extra["learning_rate"] = self._task_optimizers[name].learning_rate
            result[name] = self._logs.task_results(name, dict(extra, **control_logs[name]))
        result["total_loss"] = self._logs.losses["total_loss"].result()
        # Follows the optimizer's own step count (one per backward pass).
        result["learning_rate"] = self._optimizer.learning_rate
        if self._nonfinite.policy == "skip":
            result["nonfinite_steps"] = self._nonfinite.nonfinite_steps.read_value()
        return results_lib.to_python(result)
