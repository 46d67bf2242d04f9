"""Evaluation results as plain numbers: flat names, a printed table, metrics.json."""
import json
import os
from typing import Any, Dict, Mapping

import numpy as np
import tensorflow as tf


def to_python(logs):
    """Returns `logs` with tensors and numpy values turned into Python numbers.

    Floats keep float32 precision and print in their shortest form (0.9125,
    not 0.9125000238418579); integers stay integers; arrays become lists.
    """
    if isinstance(logs, Mapping):
        return {key: to_python(value) for key, value in logs.items()}
    value = np.asarray(logs.numpy() if hasattr(logs, "numpy") else logs)
    if value.size != 1:
        return value.tolist()
    if value.dtype in (np.float16, np.float32):
        # str() of a numpy float32 is its shortest round-tripping decimal.
        return float(str(value.reshape(()).astype(np.float32)))
    return value.item()


def flat_names(logs: Mapping[str, Mapping[str, Any]], dataset: Mapping[str, str], split: str) -> Dict[str, Any]:
    """Flattens `{task: {metric: value}}` to Snorkel-style names.

    Args:
      logs: Evaluation results of one split.
      dataset: `{task: dataset name}`.
      split: The split the results are on.

    Returns:
      `{"task/dataset/split/metric": value}`, e.g. "circle/shapes/test/accuracy".
    """
    return {
        f"{task}/{dataset[task]}/{split}/{metric}": value
        for task, metrics in logs.items()
        for metric, value in metrics.items()
    }


def format_table(logs: Mapping[str, Mapping[str, Any]], title: str = "") -> str:
    """Returns `{task: {metric: value}}` as an aligned task | metric | value table."""
    rows = [("task", "metric", "value")]
    for task, metrics in logs.items():
        for metric, value in metrics.items():
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            rows.append((task, metric, text))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [title] if title else []
    for index, row in enumerate(rows):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}")
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_metrics_json(logs: Mapping[str, Mapping[str, Any]], model_dir: str, name: str = "metrics.json") -> str:
    """Writes `{task: {metric: value}}` to `model_dir/<name>`; returns the path."""
    path = os.path.join(model_dir, name)
    with tf.io.gfile.GFile(path, "w") as stream:
        stream.write(json.dumps(to_python(logs), indent=2, sort_keys=True) + "\n")
    return path
