"""The `cross_stitch` architecture (Misra et al., 2016): task columns mixed after every stage."""
from typing import Sequence

import keras
import numpy as np

from multitask.modeling import registry
from multitask.modeling.architectures import base
from multitask.modeling.encoders import stages as stages_lib


class CrossStitchUnit(keras.layers.Layer):
    """Mixes the T task columns: `out_t = sum_u alpha[t, u] * in_u` (one T x T matrix).

    Initialised near identity as in Misra et al.: `alpha_same` on the
    diagonal and `(1 - alpha_same) / (T - 1)` elsewhere, so rows sum to 1.
    """

    def __init__(self, num_tasks: int, alpha_same: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        different = (1.0 - alpha_same) / (num_tasks - 1) if num_tasks > 1 else 0.0
        init = np.full((num_tasks, num_tasks), different, np.float32)
        np.fill_diagonal(init, 1.0 if num_tasks == 1 else alpha_same)
        self.alpha = self.add_weight(name="alpha", shape=(num_tasks, num_tasks),
                                     initializer=keras.initializers.Constant(init))

    def call(self, columns):
        stacked = keras.ops.stack(columns, axis=0)  # [T, b, ...]
        mixed = keras.ops.tensordot(keras.ops.cast(self.alpha, stacked.dtype), stacked, axes=1)
        return [mixed[i] for i in range(len(columns))]


@registry.register_architecture("cross_stitch")
class CrossStitch(base.Architecture):
    """Cross-stitch networks: one encoder column per task, mixed after every stage.

    The shared part holds every column and unit (columns feed every task
    through the units); task t's branch takes its column's output.
    """

    def __init__(self, encoder_factory: base.EncoderFactory, task_names: Sequence[str], inputs=None,
                 alpha_same: float = 0.9):
        """Builds one column per task and one cross-stitch unit per encoder stage.

        Args:
          encoder_factory: Returns a new encoder; called once per task.
          task_names: The tasks.
          inputs: Unused.
          alpha_same: Initial weight of a column's own input (in (0, 1]).
        """
        super().__init__(task_names)
        if not 0.0 < alpha_same <= 1.0:
            raise ValueError(f"alpha_same is {alpha_same!r}; it must be in (0, 1].")
        self.columns = {task: encoder_factory() for task in self.task_names}
        stages = {task: stages_lib.encoder_stages(column) for task, column in self.columns.items()}
        counts = {len(s) for s in stages.values()}
        if len(counts) != 1:
            raise ValueError(f"cross_stitch: the encoder columns have different stage counts {sorted(counts)}.")
        self._stages = stages
        self.units = [CrossStitchUnit(len(self.task_names), alpha_same, name=f"cross_stitch_{i}")
                      for i in range(counts.pop())]

    @property
    def encoders(self):
        return list(self.columns.values())

    def shared_layers(self):
        return list(self.columns.values()) + list(self.units)

    def branch_layers(self, task):
        return []

    def shared(self, features, training=None):
        xs = [features] * len(self.task_names)
        for index, unit in enumerate(self.units):
            xs = [self._stages[task][index](x, training=training) for task, x in zip(self.task_names, xs)]
            xs = unit(xs)
        return keras.ops.stack(xs, axis=1)  # [b, T, ...]

    def branch(self, task, shared, training=None):
        return shared[:, self.task_names.index(task)]
