"""Plots a run's per-task curves: `python -m multitask.report MODEL_DIR`.

Reads the TensorBoard summaries the trainer and evaluator wrote
(`MODEL_DIR/train/<task>/` and `MODEL_DIR/validation/<task>/`) and writes
`MODEL_DIR/report.png`: per-task training loss, and each validation metric
with one curve per task; and `MODEL_DIR/report.md`, the table it prints: per
task, the last training loss and the last value of each validation metric,
with their steps. MODEL_DIR may be on any filesystem TensorFlow has
(`gs://...`): it is read and written through `tf.io.gfile`.
"""
import os

# TensorFlow's C++ start-up INFO and WARNING lines drown the run's own output;
# errors still show. Set before TensorFlow is imported; an explicit value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import collections
import sys
from typing import Dict, List, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402

from multitask import paths  # noqa: E402

Series = List[Tuple[int, float]]


def read_scalars(run_dir: str) -> Dict[str, Series]:
    """Returns `{tag: [(step, value), ...]}` from the event files in `run_dir`."""
    scalars = collections.defaultdict(list)
    for path in sorted(tf.io.gfile.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = tf.make_ndarray(value.tensor)
                    if number.size == 1:
                        scalars[value.tag].append((event.step, float(number)))
                elif value.HasField("simple_value"):
                    scalars[value.tag].append((event.step, value.simple_value))
    return {tag: sorted(points) for tag, points in scalars.items()}


def read_task_scalars(directory: str) -> Dict[str, Dict[str, Series]]:
    """Returns `{task: {tag: series}}` from the per-task sub-directories of `directory`."""
    tasks = {}
    if not tf.io.gfile.isdir(directory):
        return tasks
    for name in sorted(tf.io.gfile.listdir(directory)):
        name = name.rstrip("/")
        run_dir = os.path.join(directory, name)
        if tf.io.gfile.isdir(run_dir):
            scalars = read_scalars(run_dir)
            if scalars:
                tasks[name] = scalars
    return tasks


def last_values_table(train: Dict[str, Dict[str, Series]], validation: Dict[str, Dict[str, Series]]) -> str:
    """A Markdown table: per task, the last training loss and validation metrics, with their steps."""
    metrics = sorted({tag for tags in validation.values() for tag in tags})
    header = ["task", "step", "training_loss", "validation step"] + metrics
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    for task in sorted(set(train) | set(validation)):
        loss = train.get(task, {}).get("training_loss")
        evaluated = validation.get(task, {})
        cells = [task, str(loss[-1][0]) if loss else "", f"{loss[-1][1]:.4g}" if loss else "",
                 str(max(series[-1][0] for series in evaluated.values())) if evaluated else ""]
        cells += [f"{evaluated[metric][-1][1]:.4g}" if metric in evaluated else "" for metric in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(model_dir: str) -> str:
    """Writes `model_dir/report.png` and `model_dir/report.md`; returns the PNG's path.

    Raises:
      ValueError: `model_dir` holds no per-task training summaries, or
        TensorFlow has no filesystem for its scheme.
    """
    paths.check_filesystem(model_dir, "MODEL_DIR")
    train = read_task_scalars(os.path.join(model_dir, "train"))
    validation = read_task_scalars(os.path.join(model_dir, "validation"))
    if not train:
        raise ValueError(f"{model_dir!r} has no per-task training summaries under train/.")
    metrics = sorted({tag for tags in validation.values() for tag in tags})
    panels = [("train", "training_loss")] + [("validation", metric) for metric in metrics]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for axis, (kind, tag) in zip(axes.flat, panels):
        source = train if kind == "train" else validation
        for task, scalars in source.items():
            if tag in scalars:
                steps, values = zip(*scalars[tag])
                axis.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=task)
        axis.set_title(f"{kind}: {tag}")
        axis.set_xlabel("global step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(os.path.basename(model_dir.rstrip("/")))
    figure.tight_layout()
    path = os.path.join(model_dir, "report.png")
    with tf.io.gfile.GFile(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=100)
    plt.close(figure)
    with tf.io.gfile.GFile(os.path.join(model_dir, "report.md"), "w") as stream:
        stream.write(last_values_table(train, validation) + "\n")
    return path


def main(argv=None) -> int:
    """Command line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m multitask.report MODEL_DIR", file=sys.stderr)
        return 2
    try:
        png = write_report(argv[0])
        with tf.io.gfile.GFile(os.path.join(argv[0], "report.md")) as stream:
            print(stream.read().rstrip())
        print(png)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
