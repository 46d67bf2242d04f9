"""Per-task means of what a weighting method applied: weights, gradient norms and cosines."""
from typing import Dict, Mapping, Sequence

import keras
import tensorflow as tf


class WeightingDiagnostics:
    """Running means, per task, of the weights (and gradient norms and cosines) of each step."""

    def __init__(self, task_names: Sequence[str], gradient_level: bool):
        """Creates the metrics.

        Args:
          task_names: The tasks, in order.
          gradient_level: Whether the method sees per-task gradients (then
            "grad_norm" and "grad_cosine_<other task>" are kept too).
        """
        self._names = list(task_names)
        keys = ["weight"]
        if gradient_level:
            keys += ["grad_norm"] + [f"grad_cosine_{other}" for other in self._names]
        self._metrics = {name: {key: keras.metrics.Mean(key) for key in keys if key != f"grad_cosine_{name}"}
                         for name in self._names}

    @tf.autograph.experimental.do_not_convert
    def update(self, active: Sequence[str], logs: Mapping[str, tf.Tensor]) -> None:
        """Adds a step's `logs` (rows in the order of `active`, the tasks that trained)."""
        for i, name in enumerate(active):
            metrics = self._metrics[name]
            metrics["weight"].update_state(logs["weights"][i])
            if "grad_norms" in logs:
                metrics["grad_norm"].update_state(logs["grad_norms"][i])
                for j, other in enumerate(active):
                    if other != name:
                        metrics[f"grad_cosine_{other}"].update_state(logs["grad_cosines"][i, j])

    def reset(self) -> None:
        for metrics in self._metrics.values():
            for metric in metrics.values():
                metric.reset_state()

    def results(self, name: str) -> Dict[str, tf.Tensor]:
        """Task `name`'s means since the last reset (0 where no step updated them)."""
        return {key: metric.result() for key, metric in self._metrics[name].items()}
