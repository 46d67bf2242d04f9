"""Test accuracy and wall time of the shipped experiments on their full budget.

    python -m benchmarks.experiment_accuracy [--seeds 3] [--out results.json]

Runs each experiment through the launcher (`multitask.train.run`) with its
shipped config, once per seed (the seed sets Keras' weight initialisation; the
data splits are fixed by the experiments' own seeds), and prints a table of the
final test metrics (mean ± std over seeds) and the wall time per run.
"""
import argparse
import gc
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from multitask import train  # noqa: E402

RUNS = (
    ("shapes", "joint"),
    ("shapes_interleaving", "interleaving"),
    ("multi_digits", "joint"),
)


def run_once(experiment: str, seed: int):
    """Trains `experiment` with `seed`; returns (final test logs, seconds)."""
    keras.utils.set_random_seed(seed)
    with tempfile.TemporaryDirectory() as model_dir:
        flags = train.launcher_flags(experiment=experiment, model_dir=model_dir)
        start = time.perf_counter()
        logs = train.run(flags)
        seconds = time.perf_counter() - start
    # Free this run's datasets now: tf.data iterators left to a later garbage
    # collection can stall it (see tests/conftest.py).
    gc.collect()
    return logs, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="experiment_accuracy.json")
    args = parser.parse_args()
    rows, raw = [], {}
    for experiment, trainer in RUNS:
        runs = [run_once(experiment, seed) for seed in range(args.seeds)]
        raw[experiment] = [{"seed": seed, "logs": logs, "seconds": seconds}
                           for seed, (logs, seconds) in enumerate(runs)]
        seconds = statistics.mean(s for _, s in runs)
        for task in runs[0][0]:
            values = [logs[task]["accuracy"] for logs, _ in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            rows.append((experiment, trainer, task, f"{statistics.mean(values):.3f} ± {spread:.3f}",
                         f"{min(values):.3f}", f"{seconds:.1f}"))
    header = ("experiment", "trainer", "task", "test accuracy", "min", "s/run")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print("\n" + " | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump(raw, stream, indent=2)
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
