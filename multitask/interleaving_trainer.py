"""MultiTaskInterleavingTrainer: one sampled task per step, with its own step.

Each step asks the sampler for a task (`TaskSampler.task_index`: a draw with a stateless RNG
seeded by the global step, so a resumed run draws the same sequence, then runs
that task's own `Task.train_step` on its sub-model (only that task's variables
get gradients). Sampling happens outside the replica function, so every
replica and worker trains the same task.

Task control: the sampler's distribution is restricted to the active tasks
(`MultiTask.control` flags, read in the graph), so a disabled task is never
sampled and toggling needs no retracing; a step with no active task trains
nothing. A task's `learning_rate_multiplier` scales every update its step
makes (shared and own variables) through `task_control.UpdateGuard`.
"""
import functools
from typing import Any, Dict, Optional, Union

import gin
import keras
import orbit
import tensorflow as tf

from multitask import base_model
from multitask import base_trainer
from multitask import multitask as multitask_lib
from multitask import task_control
from multitask import task_sampler as sampler_lib


@gin.configurable
class MultiTaskInterleavingTrainer(base_trainer.MultiTaskBaseTrainer):
    """Trains one task per step, picked by a `TaskSampler`."""

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
    ):
        """Creates the trainer; call it inside `strategy.scope()`.

        Args:
          multi_task: The tasks.
          multi_task_model: A `MultiTaskBaseModel`, or one keras.Model for all tasks.
          optimizer: A Keras 3 optimizer shared by all tasks.
          task_sampler: Gives the task distribution at each global step; its
            task order must be `multi_task.tasks`' order.
          trainer_options: orbit options.
          train_datasets: As for `MultiTaskBaseTrainer`.
          sampling_seed: The first half of the stateless RNG seed; the global
            step is the second.

        Raises:
          ValueError: The sampler's tasks differ from `multi_task`'s.
        """
        if list(task_sampler.task_weights) != list(multi_task.tasks):
            raise ValueError(
                f"task_sampler tasks {list(task_sampler.task_weights)} differ from the "
                f"MultiTask's tasks {list(multi_task.tasks)} (names and order must match)."
            )
        super().__init__(
            multi_task=multi_task,
            multi_task_model=multi_task_model,
            optimizer=optimizer,
            trainer_options=trainer_options,
            train_datasets=train_datasets,
        )
        self._task_sampler = task_sampler
        self._sampling_seed = sampling_seed
        all_variables = list(self._multi_task_model.trainable_variables)
        self._task_guards = {
            name: task_control.UpdateGuard(
                self._optimizer,
                {name: base_model.task_model(self._multi_task_model, name).trainable_variables},
                all_variables,
            )
            for name in multi_task.tasks
        }

    @property
    def task_sampler(self) -> sampler_lib.TaskSampler:
        return self._task_sampler

    @property
    def sampling_seed(self) -> int:
        return self._sampling_seed

    def _batches_consumed(self, name) -> int:
        """A task's source yields one batch per step that trained it; a shared one, one per trained step."""
        counters = self._task_step_counters.values() if name is None else [self._task_step_counters[name]]
        return sum(int(counter.numpy()) for counter in counters)

    def _task_step(self, name: str, iterator_map):
        """Runs task `name`'s own train_step on its next batch."""
        task = self._multi_task.tasks[name]
        model = base_model.task_model(self._multi_task_model, name)

        def step_fn(inputs):
            logs = task.train_step(
                self.task_inputs(inputs, [name])[name],
                model=model,
                optimizer=self._optimizer,
                metrics=self._training_metrics[name],
            )
            self._training_losses[name].update_state(logs[task.loss])

        guard = self._task_guards[name]
        before = guard.snapshot()
        self._strategy.run(step_fn, args=(self.next_inputs(iterator_map, [name]),))
        guard.apply(before, {name: self._multi_task.control.learning_rate_multiplier(name)})
        self._task_step_counters[name].assign_add(1)

    def train_step(self, iterator_map):
        """Samples an active task for this global step and trains it."""
        names = list(self._multi_task.tasks)
        control = self._multi_task.control
        index, any_active = self._task_sampler.task_index(
            self._global_step, self._sampling_seed, control.active_mask()
        )
        # Index len(names) (no active task) trains nothing.
        index = tf.where(any_active, index, len(names))
        branches = [functools.partial(self._task_step, name, iterator_map) for name in names]
        tf.switch_case(index, branches + [lambda: None])
        self._global_step.assign_add(1)

    def train_loop_end(self) -> Dict[str, Any]:
        """As the joint trainer's, without "total_loss" (no joint loss exists)."""
        result = super().train_loop_end()
        result.pop("total_loss")
        return result
