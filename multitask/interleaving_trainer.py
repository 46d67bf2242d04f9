"""MultiTaskInterleavingTrainer: one sampled task per step, with its own step.

Each step asks the sampler for a task (`TaskSampler.task_index`: a draw with
a stateless RNG seeded by the global step, or a deterministic schedule), so a
resumed run trains the same sequence, then runs that task's own
`Task.train_step` on its sub-model (only that task's variables get
gradients). Sampling happens outside the replica function, so every
replica and worker trains the same task.

Task control: the sampler's distribution is restricted to the active tasks
of the loop's `task_control.LoopPlan` (fixed for each stretch of a loop, as in
the joint trainer), so a task that is off is never sampled and its step is
not even traced; a step with no active task trains nothing. A sampler that uses the weights (`TaskSampler.uses_weights`) samples
with the current `TaskControl` sampling-weight variables, read in the graph,
so `set_sampling_weight` takes effect at the next step without retracing (and
the weights are logged as "sampling_weight"). A task's
`learning_rate_multiplier` scales every update its step makes (shared and own
variables) through `training.update_guard.UpdateGuard`.
"""
import functools
from typing import Any, Dict, Mapping, Optional, Union

import gin
import keras
import numpy as np
import orbit
import tensorflow as tf

from multitask import base_model
from multitask import base_trainer
from multitask import multitask as multitask_lib
from multitask import task_sampler as sampler_lib
from multitask.training import update_guard


@gin.configurable
class MultiTaskInterleavingTrainer(base_trainer.MultiTaskBaseTrainer):
    """Trains one task per step, picked by a `TaskSampler`."""

    _joint = False
    _logs_loss_weights = False

    def __init__(
        self,
        multi_task: multitask_lib.MultiTask,
        multi_task_model: Union[keras.Model, base_model.MultiTaskBaseModel],
        optimizer: keras.optimizers.Optimizer,
        task_sampler: sampler_lib.TaskSampler,
        trainer_options: Optional[orbit.StandardTrainerOptions] = None,
        train_datasets=None,
        sampling_seed: int = 0,
        task_optimizers: Optional[Mapping[str, keras.optimizers.Optimizer]] = None,
        successive_regularization: float = 0.0,
        on_nonfinite: str = "raise",
        jit_compile: bool = False,
    ):
        """Creates the trainer; call it inside `strategy.scope()`.

        Args:
          multi_task: The tasks.
          multi_task_model: A `MultiTaskBaseModel`, or one keras.Model for all tasks.
          optimizer: A Keras 3 optimizer shared by all tasks.
          task_sampler: Gives the task distribution at each global step; its
            task order must be `multi_task.tasks`' order. When it uses the
            weights, they must equal `multi_task.sampling_weights`: the
            trainer samples with those variables.
          trainer_options: orbit options.
          train_datasets: As for `MultiTaskBaseTrainer`.
          sampling_seed: The first half of the stateless RNG seed; the global
            step is the second.
          task_optimizers: `{task: optimizer}`: tasks that step with an
            optimizer of their own (HMTL's design; its state, schedule and
            step count are the task's), built on the task's sub-model and
            saved in the checkpoint under "task_optimizers". Other tasks use
            `optimizer`.
          successive_regularization: As for `MultiTaskBaseTrainer`; the pull
            follows every task step, at that step's learning rate.
          on_nonfinite: As for `MultiTaskBaseTrainer`.
          jit_compile: As for `MultiTaskBaseTrainer`.

        Raises:
          ValueError: The sampler's tasks differ from `multi_task`'s, or
            its weights from `multi_task.sampling_weights` when it uses them.
          KeyError: `task_optimizers` names an unknown task.
        """
        if list(task_sampler.task_weights) != list(multi_task.tasks):
            raise ValueError(
                f"task_sampler tasks {list(task_sampler.task_weights)} differ from the "
                f"MultiTask's tasks {list(multi_task.tasks)} (names and order must match)."
            )
        current = multi_task.sampling_weights
        if task_sampler.uses_weights and not np.array_equal(
                np.float32(list(task_sampler.task_weights.values())), np.float32(list(current.values()))):
            raise ValueError(
                f"task_sampler weights {task_sampler.task_weights} differ from the MultiTask's sampling "
                f"weights {current}; the trainer samples with the latter (MultiTask.control variables): "
                "build the sampler from multi_task.sampling_weights."
            )
        super().__init__(
            multi_task=multi_task,
            multi_task_model=multi_task_model,
            optimizer=optimizer,
            trainer_options=trainer_options,
            train_datasets=train_datasets,
            successive_regularization=successive_regularization,
            on_nonfinite=on_nonfinite,
            jit_compile=jit_compile,
            task_optimizers=task_optimizers,
        )
        self._task_sampler = task_sampler
        self._sampling_seed = sampling_seed
        all_variables = base_model.optimizer_variables(self._multi_task_model)
        self._task_guards = {
            name: update_guard.UpdateGuard(
                self.task_optimizer(name), {name: _task_variables(self._multi_task_model, name, all_variables)},
                all_variables,
            )
            for name in multi_task.tasks
        }

    def _guarded_groups(self, plan) -> frozenset:
        """The active tasks whose updates are scaled (each task's step guards its own)."""
        return plan.scaled & set(plan.active)

    @property
    def _logs_sampling_weights(self) -> bool:
        return self._task_sampler.uses_weights

    @property
    def task_sampler(self) -> sampler_lib.TaskSampler:
        return self._task_sampler

    @property
    def sampling_seed(self) -> int:
        return self._sampling_seed

    def _task_optimizer_variables(self, name: str):
        """A task optimizer updates every variable of its task's steps, shared ones included."""
        return _task_variables(self._multi_task_model, name, base_model.optimizer_variables(self._multi_task_model))

    def _batches_consumed(self, name) -> int:
        """A task's source yields one batch per step that trained it; a shared one, one per trained step."""
        counters = self._task_step_counters.values() if name is None else [self._task_step_counters[name]]
        return sum(int(counter.numpy()) for counter in counters)

    def _task_step(self, name: str, iterator_map):
        """Runs task `name`'s own train_step on its next batch."""
        task = self._multi_task.tasks[name]
        model = base_model.task_model(self._multi_task_model, name)

        def step_fn(inputs):
            task_inputs = self._inputs.task_inputs(inputs, [name])[name]
            logs = task.train_step(
                task_inputs,
                model=model,
                optimizer=self.task_optimizer(name),
                metrics=self._logs.metrics[name],
            )
            loss = logs[task.loss]
            # Weighted by the batch's `loss_count` (`training.train_logs`).
            self._logs.record_task_step(name, loss, task_inputs, self._nonfinite.update_mean)
            return self._nonfinite.step_flags([loss if n == name else 0.0 for n in self._multi_task.tasks])

        guard = self._task_guards[name]
        # The snapshot copies the sub-model's variables: only a scaled task takes it.
        before = guard.snapshot([name] if name in self._guarded else [])
        with self._nonfinite.guarding(self.task_optimizer(name)):
            flags = self._strategy.run(self.compiled(step_fn), args=(self._inputs.next(iterator_map, [name]),))
        self._nonfinite.record(flags, self._global_step + 1)
        if before:
            guard.apply(before, {name: self._multi_task.control.learning_rate_multiplier(name)})
        if self._successive is not None:
            self._successive.apply(self.task_optimizer(name).learning_rate)
        self._task_step_counters[name].assign_add(1)

    def train_step(self, iterator_map):
        """Samples an active task for this global step and trains it."""
        names, active = list(self._multi_task.tasks), self._plan.active
        control = self._multi_task.control
        kwargs = {"weights": control.sampling_weight_vector()} if self._task_sampler.uses_weights else {}
        if active:
            mask = tf.constant([name in active for name in names])
            index, any_task = self._task_sampler.task_index(self._global_step, self._sampling_seed, mask, **kwargs)
            # Index len(names): every active task weighs 0, nothing trains. An
            # inactive task's branch is never taken, so it is not traced.
            branches = [functools.partial(self._task_step, name, iterator_map) if name in active else _no_step
                        for name in names]
            tf.switch_case(tf.where(any_task, index, len(names)), branches + [_no_step])
        self._global_step.assign_add(1)

    def train_loop_end(self) -> Dict[str, Any]:
        """As the joint trainer's, without "total_loss" (no joint loss exists)."""
        result = super().train_loop_end()
        result.pop("total_loss")
        return result


def _no_step() -> None:
    """The branch of a step that trains no task."""


def _task_variables(model, task_name: str, optimizer_variables) -> list:
    """The variables task `task_name`'s step may update, frozen parts included."""
    candidates = {id(v) for v in optimizer_variables}
    return [v for v in base_model.task_model(model, task_name).variables if id(v) in candidates]
