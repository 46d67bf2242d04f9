"""MultiTaskInterleavingTrainer: one sampled task per step, with its own step.

Each step draws a task from the sampler's distribution with a stateless RNG
seeded by the global step, so a resumed run draws the same sequence, then runs
that task's own `Task.train_step` on its sub-model (only that task's variables
get gradients). Sampling happens outside the replica function, so every
replica and worker trains the same task.
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
from multitask import task_sampler as sampler_lib


@gin.configurable
class MultiTaskInterleavingTrainer(base_trainer.MultiTaskBaseTrainer):
    """Trains one task per step, picked by a `TaskSampler`."""

    def __init__(
        self,
        multi_task: multitask_lib.MultiTask,
        multi_task_model: Union[keras.Model, base_model.MultiTaskBaseModel],
        optimizer: keras.optimizers.Optimizer,
        task_sampler: sampler_lib.TaskSampler,
        trainer_options: Optional[orbit.StandardTrainerOptions] = None,
        train_datasets=None,
        sampling_seed: int = 0,
        on_nonfinite: str = "raise",
        jit_compile: bool = False,
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
          on_nonfinite: As for `MultiTaskBaseTrainer`.
          jit_compile: As for `MultiTaskBaseTrainer`.

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
            on_nonfinite=on_nonfinite,
            jit_compile=jit_compile,
        )
        self._task_sampler = task_sampler
        self._sampling_seed = sampling_seed

    @property
    def task_sampler(self) -> sampler_lib.TaskSampler:
        return self._task_sampler

    @property
    def sampling_seed(self) -> int:
        return self._sampling_seed

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
            loss = logs[task.loss]
            self._nonfinite.update_mean(self._training_losses[name], loss)
            return self._nonfinite.step_flags([loss if n == name else 0.0 for n in self._multi_task.tasks])

        with self._nonfinite.guarding(self._optimizer):
            flags = self._strategy.run(self.compiled(step_fn), args=(self.next_inputs(iterator_map, [name]),))
        self._task_step_counters[name].assign_add(1)
        self._nonfinite.record(flags, self._global_step + 1)

    def train_step(self, iterator_map):
        """Samples a task for this global step and trains it."""
        names = list(self._multi_task.tasks)
        if len(names) == 1:
            self._task_step(names[0], iterator_map)
        else:
            cumulative = self._task_sampler.task_cumulative_distribution(self._global_step)
            index = sampler_lib.sample_task_index(cumulative, self._global_step, self._sampling_seed)
            tf.switch_case(index, [functools.partial(self._task_step, name, iterator_map) for name in names])
        self._global_step.assign_add(1)

    def train_loop_end(self) -> Dict[str, Any]:
        """As the joint trainer's, without "total_loss" (no joint loss exists)."""
        result = super().train_loop_end()
        result.pop("total_loss")
        return result
