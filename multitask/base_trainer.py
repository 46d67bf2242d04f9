"""MultiTaskBaseTrainer: the joint multi-task trainer, an orbit StandardTrainer.

Every step takes one batch of every task, computes each task's loss, and makes
one gradient step on their weighted sum (`MultiTask.joint_train_step`). The
`steps_per_loop` steps of a loop run inside one `tf.function` (orbit's
`tf.while_loop`), under whatever `tf.distribute` strategy is current when the
trainer is created.

Sub-models that Keras has not built yet and that have no Keras `inputs` (plain
subclassed models) are built when the trainer is created, by one symbolic call
on inputs shaped like their task's train data (`multitask.model_inputs`), so
the optimizer is built on every variable before the first step.

Parts of the model may be frozen or unfrozen between `train()` calls
(`MultiTaskBaseModel.freeze`): the optimizer is built on the frozen variables
too. The traced loop is specific to the trainable variables and to the task
control's `LoopPlan` at the loop's start; the trainer keeps one per
combination it has seen, so a change traces once and going back traces nothing.
"""
import functools
from typing import Any, Dict, Mapping, Optional, Union

from absl import logging
import gin
import keras
import orbit
import tensorflow as tf

from multitask import base_model
from multitask import joint_step
from multitask import model_inputs
from multitask import multitask as multitask_lib
from multitask import nonfinite
from multitask import results as results_lib
from multitask import successive_regularization as successive_lib
from multitask import task_control
from multitask.core import base_task
from multitask.weighting import base as weighting_base

_RESERVED_CHECKPOINT_NAMES = (
    "model", "optimizer", "global_step", "task_step_counters", "weighting", "task_control",
    "shared_learning_rate_multiplier", "task_optimizers", "successive_regularization", "nonfinite_steps",
)
# The UpdateGuard group of the variables several tasks share.
_SHARED_GROUP = "__shared__"


class _UntrackedDict(dict):
    """A dict that `tf.Module` attribute tracking stores as is.

    orbit keeps the train datasets (and their iterators) as attributes and
    passes the iterators into the traced loop. A plain dict attribute becomes
    a tracking proxy, which `tf.function` cannot take as an argument under
    Python 3.11 (TF 2.20: "this __dict__ descriptor does not support
    '_DictWrapper' objects"); a dict subclass is not wrapped.
    """


def _needs_loss_scaling() -> bool:
    return keras.mixed_precision.global_policy().compute_dtype == "float16"


@gin.configurable
class MultiTaskBaseTrainer(orbit.StandardTrainer):
    """Trains all tasks together: one backward pass over the weighted losses.

    Task control (`MultiTask.enable_task` / `disable_task`, loss weights,
    learning-rate multipliers) is read from variables inside the traced step:
    a disabled task's forward pass and metrics sit in a `tf.cond` that skips
    them, its batch is still read (so every task's data stays aligned with
    the global step), and its task-specific variables and their optimizer
    slots are restored after the optimizer's update (`UpdateGuard`), so the
    step leaves them untouched. A step with no active task updates nothing
    but the global step. Only the tasks the loop's `task_control.LoopPlan`
    names pay for this; a loop where every task is on and every multiplier
    is 1 runs the plain joint step.
    """

    # Whether the trainer logs each task's loss weight (the joint step uses it)
    # and its sampling weight (an interleaving sampler that reads it).
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
    ):
        """Creates the trainer; call it inside `strategy.scope()`.

        Args:
          multi_task: The tasks and their weights.
          multi_task_model: A `MultiTaskBaseModel`, or one keras.Model for all tasks.
          optimizer: A Keras 3 optimizer. Under a float16 policy it is wrapped in
            a `keras.optimizers.LossScaleOptimizer` unless it already is one.
          trainer_options: orbit options; by default the loop runs in a
            `tf.function` with a `tf.while_loop`.
          train_datasets: `{task_name: source}` (one batch per task per step),
            or one source yielding `(features, {task_name: labels})` that
            feeds every task (the multi-label form). A source is a
            `tf.data.Dataset` of global batches, a function
            `fn(input_context=...)` returning a per-replica-batched dataset, or
            an already distributed dataset (which cannot be repositioned on
            resume). Defaults to each task's `build_inputs(task_config.train_data)`.
          weighting: A `multitask.weighting.Weighting` that balances the tasks
            (see `joint_step.balanced_train_step`); by default the joint loss
            is the sum of `task_weight * loss`, as in Model Garden.
          rep_grad: Balance gradients with respect to the shared representation
            instead of the shared parameters (needs a shared dataset and an
            `EncoderHeadsModel`).
          shared_learning_rate_multiplier: Scales the updates of the variables
            several tasks share (the trunk), as each task's
            `learning_rate_multiplier` scales its own (its head): per-group
            learning rates. None (the default) costs nothing; a number keeps
            it in a variable (`shared_learning_rate_multiplier`, checkpointed,
            assignable between steps) at the price of a copy of the trunk per
            step while it is not 1.
          successive_regularization: λ of HMTL's pull of the shared variables
            towards their values at the start of the phase (see
            `successive_regularization`); 0 is off.
          on_nonfinite: What a step with a NaN or Inf task loss or gradient
            does (it never updates a variable; see `multitask.nonfinite`):
            "raise" stops with `NonFiniteLossError` after the loop, naming the
            task and the step, before any checkpoint is written; "skip" counts
            it (`nonfinite_steps`) and goes on.
          jit_compile: Compile each step's replica function (forward,
            backward, weighting, update, metrics) with XLA; batches need
            static shapes (`drop_remainder`). `runtime.enable_xla` sets it.
            One replica only (XLA cannot reach other devices' variables);
            under a TPUStrategy the steps are compiled anyway.

        Raises:
          KeyError: A task has no sub-model in `multi_task_model`.
          ValueError: The model cannot be built, `checkpoint_items` reuse a
            reserved checkpoint name, an unknown `on_nonfinite`, `jit_compile`
            with several replicas (not on a TPU), or the weighting, `rep_grad`, the task
            weights and the data do not fit together.
        """
        self._strategy = tf.distribute.get_strategy()
        self._multi_task = multi_task
        self._multi_task_model = multi_task_model
        base_model.check_tasks_in_model(multi_task_model, multi_task.tasks)
        if _needs_loss_scaling() and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self._optimizer = optimizer
        self._global_step = orbit.utils.create_global_step()
        self._task_step_counters = {
            name: tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_steps",
                              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            for name in multi_task.tasks
        }
        if train_datasets is None:
            train_datasets = {
                name: functools.partial(task.build_inputs, task.task_config.train_data)
                for name, task in multi_task.tasks.items()
            }
        self._shared_input = not isinstance(train_datasets, Mapping)
        if not self._shared_input:
            missing = sorted(set(multi_task.tasks) - set(train_datasets))
            if missing:
                raise KeyError(f"train_datasets has no dataset for tasks {missing}.")
        self._train_sources = train_datasets
        # Every variable must exist, and the optimizer must track all of them,
        # before the first traced step (interleaved branches update subsets).
        # Sub-models without Keras inputs are built from their data's spec.
        base_model.ensure_built(multi_task_model, list(multi_task.tasks), self._train_features_spec)
        self._weighting = weighting
        self._rep_grad = rep_grad
        # Frozen parts included, so that unfreezing them later needs no rebuild.
        optimizer.build(
            base_model.optimizer_variables(multi_task_model)
            + (list(weighting.trainable_variables) if weighting is not None else [])
        )
        self._trainable_signature = None
        # The traced train loops, one per (trainable variables, LoopPlan, guarded groups).
        self._loop_key = None
        self._train_loop_fns = {}
        self._plan = self._guarded = None  # Set when a loop starts.
        self._nonfinite = nonfinite.NonFiniteGuard(on_nonfinite, list(multi_task.tasks))
        tpu = isinstance(self._strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))
        if jit_compile and self._strategy.num_replicas_in_sync > 1 and not tpu:
            raise ValueError(
                f"runtime.enable_xla / jit_compile compiles the step of one device; XLA cannot update "
                f"the variables of {self._strategy.num_replicas_in_sync} replicas of "
                f"{type(self._strategy).__name__} from one cluster. Use it with one replica (default or "
                "one_device strategy); a TPUStrategy compiles its steps itself."
            )
        # A TPUStrategy compiles every replica function with XLA already.
        self._jit_compile = jit_compile and not tpu
        self._training_losses = {name: keras.metrics.Mean("training_loss") for name in multi_task.tasks}
        self._training_losses["total_loss"] = keras.metrics.Mean("training_loss")
        self._training_metrics = {
            name: task.build_metrics(training=True) for name, task in multi_task.tasks.items()
        }
        checkpoint_items = dict(getattr(multi_task_model, "checkpoint_items", None) or {})
        clashes = sorted(set(checkpoint_items) & set(_RESERVED_CHECKPOINT_NAMES))
        if clashes:
            raise ValueError(
                f"checkpoint_items of {type(multi_task_model).__name__} use reserved names "
                f"{clashes}; reserved: {', '.join(_RESERVED_CHECKPOINT_NAMES)}."
            )
        if weighting is not None:
            checkpoint_items["weighting"] = weighting
        self._checkpoint = tf.train.Checkpoint(
            model=multi_task_model,
            optimizer=optimizer,
            global_step=self._global_step,
            task_step_counters=self._task_step_counters,
            task_control=multi_task.control,
            nonfinite_steps=self._nonfinite.nonfinite_steps,
            **checkpoint_items,
        )
        # Frozen parts included: one unfrozen later is still guarded while its task is disabled.
        shared, groups = joint_step.split_variables(multi_task_model, list(multi_task.tasks), frozen_included=True)
        self._shared_multiplier = None
        if shared_learning_rate_multiplier is not None:
            self._shared_multiplier = tf.Variable(
                float(shared_learning_rate_multiplier), trainable=False, name="shared_learning_rate_multiplier"
            )
            self._checkpoint.shared_learning_rate_multiplier = self._shared_multiplier
            groups[_SHARED_GROUP] = shared
        self._update_guard = task_control.UpdateGuard(
            optimizer, groups, base_model.optimizer_variables(multi_task_model))
        self._successive = None
        if successive_regularization:
            # Only what trains now: the pull must not move a frozen variable.
            trainable_shared, _ = joint_step.split_variables(multi_task_model, list(multi_task.tasks))
            self._successive = successive_lib.SuccessiveRegularization(trainable_shared, successive_regularization)
            self._checkpoint.successive_regularization = self._successive
        self._check_balancing()
        self._diagnostics = self._build_diagnostics()
        # Distributed at the first loop, after a checkpoint may have been restored.
        super().__init__(train_dataset=None, options=trainer_options or orbit.StandardTrainerOptions())

    def _train_features_spec(self, name: str):
        """The spec of task `name`'s train features, which builds its sub-model when Keras has not."""
        return model_inputs.features_spec(self._train_sources if self._shared_input else self._train_sources[name])

    def _check_balancing(self):
        """Refuses weighting / rep_grad / task-weight / data combinations that cannot work."""
        weighting, names = self._weighting, list(self._multi_task.tasks)
        if weighting is None:
            if self._rep_grad:
                raise ValueError("trainer.rep_grad needs a trainer.weighting method to balance gradients.")
            return
        if weighting.num_tasks != len(names):
            raise ValueError(f"The weighting is for {weighting.num_tasks} tasks; the MultiTask has {len(names)}.")
        control = self._multi_task.control
        weighted = {n: w for n, w in control.initial_loss_weights.items() if w != 1.0 or control.has_schedule(n)}
        if weighted:
            raise ValueError(
                f"task_weight / loss_weight (or a loss_weight_schedule) {weighted} would be ignored by "
                "trainer.weighting "
                f"{getattr(weighting, 'registered_name', type(weighting).__name__)!r}: leave the "
                "task weights at 1, or use weighting type 'static' with its `weights`."
            )
        kind = weighting_base.REPRESENTATION if self._rep_grad else weighting_base.PARAMETER
        uses_gradients = self._rep_grad or not weighting.loss_level
        if uses_gradients and kind not in weighting.gradient_kinds:
            raise ValueError(
                f"weighting {getattr(weighting, 'registered_name', type(weighting).__name__)!r} takes "
                f"{' or '.join(weighting.gradient_kinds)} gradients, not {kind} gradients: "
                f"set trainer.rep_grad to {not self._rep_grad}."
            )
        if self._rep_grad:
            if weighting.trainable_variables:
                raise ValueError(
                    "trainer.rep_grad: this weighting learns its weights from the loss, which the "
                    "representation-gradient path does not differentiate; set rep_grad to False."
                )
            if not self._shared_input or not isinstance(self._multi_task_model, base_model.EncoderHeadsModel):
                raise ValueError(
                    "trainer.rep_grad needs one shared dataset for all tasks and an EncoderHeadsModel "
                    "(the representation must be the same for every task)."
                )
            self._multi_task_model.check_rep_grad()

    def _build_diagnostics(self) -> Dict[str, Dict[str, keras.metrics.Mean]]:
        """Per-task means of the weights (and gradient norms and cosines) a weighting applies."""
        if self._weighting is None:
            return {}
        names = list(self._multi_task.tasks)
        keys = ["weight"]
        if self._rep_grad or not self._weighting.loss_level:
            keys += ["grad_norm"] + [f"grad_cosine_{other}" for other in names]
        return {name: {key: keras.metrics.Mean(key) for key in keys if key != f"grad_cosine_{name}"}
                for name in names}

    def _batches_consumed(self, name: Optional[str]) -> int:
        """Batches a source has yielded so far: one per global step (disabled tasks' too)."""
        del name
        return int(self._global_step.numpy())

    def _distribute(self, source, batches_to_skip: int):
        """Distributes one train source, skipping the batches already trained on."""
        if isinstance(source, tf.data.Dataset):
            # A plain dataset yields global batches: one per step.
            return self._strategy.experimental_distribute_dataset(source.skip(batches_to_skip))
        if callable(source):

            def dataset_fn(input_context):
                # Each input pipeline feeds this many replicas per step.
                per_step = input_context.num_replicas_in_sync // input_context.num_input_pipelines
                return source(input_context=input_context).skip(batches_to_skip * per_step)

            return self._strategy.distribute_datasets_from_function(dataset_fn)
        if batches_to_skip:
            logging.warning(
                "Resuming at step %d with an already distributed train dataset: it restarts "
                "from its beginning; pass a tf.data.Dataset or a dataset function to resume "
                "at the same position.", int(self._global_step.numpy()),
            )
        return source

    def _distributed_datasets(self):
        """Distributes the train sources at the position the counters say."""
        if self._shared_input:
            return self._distribute(self._train_sources, self._batches_consumed(None))
        return _UntrackedDict(
            (name, self._distribute(self._train_sources[name], self._batches_consumed(name)))
            for name in self._multi_task.tasks
        )

    @property
    def strategy(self):
        return self._strategy

    @property
    def multi_task(self) -> multitask_lib.MultiTask:
        return self._multi_task

    @property
    def multi_task_model(self):
        return self._multi_task_model

    @property
    def optimizer(self) -> keras.optimizers.Optimizer:
        return self._optimizer

    @property
    def global_step(self) -> tf.Variable:
        return self._global_step

    @property
    def on_nonfinite(self) -> str:
        """"raise" or "skip": what a step with a NaN or Inf loss or gradient does."""
        return self._nonfinite.policy

    @property
    def jit_compile(self) -> bool:
        """Whether each step's replica function is compiled with XLA."""
        return self._jit_compile

    @property
    def checkpoint(self) -> tf.train.Checkpoint:
        """Model, optimizer, global step and per-task step counters."""
        return self._checkpoint

    @property
    def training_losses(self) -> Dict[str, keras.metrics.Mean]:
        """Per-task (and "total_loss") running means of the training loss."""
        return self._training_losses

    @property
    def training_metrics(self) -> Dict[str, list]:
        """Per-task training metrics, from each task's `build_metrics(True)`."""
        return self._training_metrics

    @property
    def successive_regularization(self) -> Optional[successive_lib.SuccessiveRegularization]:
        """The shared variables' anchors (None when successive regularization is off)."""
        return self._successive

    @property
    def shared_learning_rate_multiplier(self) -> Optional[tf.Variable]:
        """The trunk's update multiplier (None unless the trainer was given one)."""
        return self._shared_multiplier

    def task_step_counter(self, name: str) -> tf.Variable:
        """The number of steps that trained task `name`."""
        return self._task_step_counters[name]

    def next_inputs(self, iterators, task_names):
        """Reads the next batch for `task_names` (outside the replica function).

        Returns the shared batch with one shared dataset, else `{task: batch}`.
        """
        if self._shared_input:
            return next(iterators)
        return {name: next(iterators[name]) for name in task_names}

    def task_inputs(self, inputs, task_names):
        """Turns a replica's `next_inputs` into `{task: (features, labels)}`."""
        if not self._shared_input:
            return inputs
        features, labels = base_task.split_inputs(inputs)
        return {name: (features, labels[name]) for name in task_names}

    def compiled(self, replica_fn):
        """`replica_fn` as an XLA-compiled `tf.function` under `jit_compile`, else as is."""
        return tf.function(replica_fn, jit_compile=True) if self._jit_compile else replica_fn

    def train_loop_begin(self):
        """Resets the per-loop metrics; distributes the train data on the first loop.

        Picks the traced loop for the trainable variables and the task
        control's `LoopPlan` of now (`create_train_loop_fn` traces a new one
        for a combination not seen before).

        The checkpoint is restored after the trainer is built, so the data is
        distributed at the first loop, skipping the batches that the (restored)
        step counters say were trained on: with deterministic input pipelines
        (seeded shuffles), a resumed run sees the same batches as an
        uninterrupted one. Skipping reads the skipped batches once.
        """
        if self._weighting is not None:
            self._check_weighting_control()
        if self._successive is not None:
            self._successive.maybe_start_phase(self._multi_task.active_tasks)
        if self.train_dataset is None:
            self.train_dataset = self._distributed_datasets()
        self._follow_trainable_set()
        self._select_train_loop()
        for metric in self._training_losses.values():
            metric.reset_state()
        for metrics in self._training_metrics.values():
            for metric in metrics:
                metric.reset_state()
        for metrics in self._diagnostics.values():
            for metric in metrics.values():
                metric.reset_state()

    def _follow_trainable_set(self):
        """Notes the trainable variables, which the traced loop updates.

        After a `freeze` / `unfreeze` (or any change of a layer's `trainable`)
        the next loop is one traced for the new set. The optimizer keeps its
        state (it was built on the frozen variables too).

        Raises:
          ValueError: A gradient-level weighting would have no shared
            parameters left to balance.
        """
        variables = self._multi_task_model.trainable_variables
        signature = tuple(id(v) for v in variables)
        if signature == self._trainable_signature:
            return
        if self._trainable_signature is not None:
            logging.info("The trainable variables changed (%d now).", len(variables))
        self._trainable_signature = signature
        weighting = self._weighting
        if weighting is not None and not weighting.loss_level and not self._rep_grad:
            shared, _ = joint_step.split_variables(self._multi_task_model, list(self._multi_task.tasks))
            if not shared:
                raise ValueError(
                    f"weighting {getattr(weighting, 'registered_name', type(weighting).__name__)!r} "
                    "balances the gradients of the shared parameters, and all of them are frozen: "
                    "unfreeze them, or use rep_grad or a loss-level weighting."
                )

    def _guarded_groups(self, plan: task_control.LoopPlan) -> frozenset:
        """The `UpdateGuard` groups a loop with `plan` snapshots and scales."""
        groups = plan.gated | plan.scaled
        if self._shared_multiplier is not None and float(self._shared_multiplier.numpy()) != 1.0:
            groups |= {_SHARED_GROUP}
        return groups

    def _select_train_loop(self):
        """Points orbit at the traced loop for the trainable variables and the loop plan of now."""
        self._plan = self._multi_task.control.loop_plan()
        self._guarded = self._guarded_groups(self._plan)
        key = (self._trainable_signature, self._plan, self._guarded)
        if key != self._loop_key:
            self._loop_key = key
            self._train_loop_fn = self._train_loop_fns.get(key)  # None: orbit creates it.

    def create_train_loop_fn(self):
        """orbit's loop function, traced for `self._plan`; kept for reuse under the same key."""
        loop_fn = super().create_train_loop_fn()
        self._train_loop_fns[self._loop_key] = loop_fn
        return loop_fn

    def _check_weighting_control(self):
        """A weighting balances every task at weight 1: refuse what it would ignore."""
        control = self._multi_task.control
        disabled = [n for n in control.task_names if n not in control.active_tasks()]
        weighted = {n: float(v.numpy()) for n, v in zip(control.task_names, control.loss_weights)
                    if float(v.numpy()) != 1.0}
        if disabled or weighted:
            raise ValueError(
                f"trainer.weighting balances all tasks at weight 1; disabled tasks {disabled} and "
                f"loss weights {weighted} cannot be honoured. Enable the tasks and reset their "
                "loss weights, or train without a weighting."
            )

    def train_step(self, iterator_map):
        """One joint step over the active tasks."""
        names = list(self._multi_task.tasks)
        control = self._multi_task.control
        # Read once: the step's schedules and windows, before the step counts.
        step = self._global_step.read_value()
        active = control.activity(step, self._plan.gated)
        guarded = self._guarded

        def step_fn(inputs):
            shared_features = base_task.split_inputs(inputs)[0] if self._shared_input else None
            task_inputs = self.task_inputs(inputs, names)
            if self._weighting is None:
                logs = self._multi_task.joint_train_step(
                    task_inputs,
                    multi_task_model=self._multi_task_model,
                    optimizer=self._optimizer,
                    task_metrics=self._training_metrics,
                    shared_features=shared_features,
                    global_step=step,
                    active=active,
                )
            else:
                logs = joint_step.balanced_train_step(
                    self._multi_task, self._weighting, task_inputs, self._multi_task_model,
                    self._optimizer, self._training_metrics, shared_features=shared_features,
                    rep_grad=self._rep_grad,
                )
                self._update_diagnostics(names, logs)
            for key in names:
                self._nonfinite.update_mean(self._training_losses[key], logs[key], weight=active[key])
            self._nonfinite.update_mean(self._training_losses["total_loss"], logs["total_loss"])
            return self._nonfinite.step_flags([logs[name] for name in names])

        # None: some task is active at every step of this loop.
        any_active = None if len(self._plan.gated) < len(names) else tf.reduce_any(tf.stack(list(active.values())))
        before = self._update_guard.snapshot(guarded)
        # No tf.cond around strategy.run: replica functions that synchronise
        # (merge_call) cannot run in a cond branch. The update is gated instead.
        with self._nonfinite.guarding(self._optimizer, update_if=any_active):
            flags = self._strategy.run(self.compiled(step_fn), args=(self.next_inputs(iterator_map, names),))
        self._nonfinite.record(flags, step + 1)
        if self._successive is not None:
            if any_active is None:
                self._successive.apply(self._optimizer.learning_rate)
            else:
                tf.cond(any_active, lambda: self._successive.apply(self._optimizer.learning_rate), lambda: None)
        factors = {name: tf.where(active[name], control.learning_rate_multiplier(name), 0.0)
                   for name in names if name in guarded}
        if _SHARED_GROUP in guarded:
            factors[_SHARED_GROUP] = self._shared_multiplier.read_value()
        self._update_guard.apply(before, factors)
        self._global_step.assign_add(1)
        for name, counter in self._task_step_counters.items():
            counter.assign_add(tf.cast(active[name], tf.int64))

    def _update_diagnostics(self, names, logs):
        for i, name in enumerate(names):
            metrics = self._diagnostics[name]
            metrics["weight"].update_state(logs["weights"][i])
            if "grad_norms" in logs:
                metrics["grad_norm"].update_state(logs["grad_norms"][i])
                for j, other in enumerate(names):
                    if other != name:
                        metrics[f"grad_cosine_{other}"].update_state(logs["grad_cosines"][i, j])

    def train_loop_end(self) -> Dict[str, Any]:
        """Returns the loop's means as Python numbers.

        `{task: {"training_loss", <metrics>, "task_steps"}, "total_loss", "learning_rate"}`,
        plus per task the knobs in use (`TaskControl.logs`): "loss_weight",
        "learning_rate_multiplier", "sampling_weight", "active".
        and "nonfinite_steps" under `on_nonfinite="skip"`.

        Raises:
          NonFiniteLossError: A step of the run had a NaN or Inf loss or
            gradient and `on_nonfinite` is "raise" (orbit then saves no checkpoint).
        """
        self._nonfinite.check()
        result = {}
        control_logs = self._multi_task.control.logs(
            self._global_step, self._logs_loss_weights, self._logs_sampling_weights
        )
        for name in self._multi_task.tasks:
            logs = {"training_loss": self._training_losses[name].result()}
            logs.update({metric.name: metric.result() for metric in self._training_metrics[name]})
            logs.update({key: metric.result() for key, metric in self._diagnostics.get(name, {}).items()})
            logs["task_steps"] = self._task_step_counters[name].read_value()
            logs.update(control_logs[name])
            result[name] = logs
        result["total_loss"] = self._training_losses["total_loss"].result()
        # Follows the optimizer's own step count (one per backward pass).
        result["learning_rate"] = self._optimizer.learning_rate
        if self._nonfinite.policy == "skip":
            result["nonfinite_steps"] = self._nonfinite.nonfinite_steps.read_value()
        return results_lib.to_python(result)
