"""Runs the benchmarks, prints their tables and writes all results to one JSON.

    python -m benchmarks.run [--quick] [--only NAME ...] [--out benchmarks_results.json]
        [--results_dir benchmarks/results]

Each benchmark runs in a process of its own (`python -m benchmarks.<module>`),
so that its peak resident set size, read from the child's `rusage` when it
exits, is that workload's alone, and one benchmark's memory or threads never
slow the next. The children print their tables as they go; the JSON holds,
per benchmark, the command, its wall time, its peak RSS and the results the
module wrote. `--quick` runs fewer steps, rounds, task counts and weighting
methods (a few minutes on 2 CPU cores, for checking that everything runs;
its numbers are noisy); the full run is what the README's tables come from.

Every benchmark's run is also recorded under `--results_dir` (by default
`benchmarks/results/`; with `--quick`, nowhere unless it is given) as
`<name>-<date>.md` and `.json` with the command, the machine, the versions
and the commit (`benchmarks.record`): the trainer-overhead modules write
their own Markdown tables there; for the others this script records the
table the child printed and the JSON it wrote.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from benchmarks import record
from benchmarks import timing

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Weighting methods timed by --quick: the reference, a loss weighting, a
# parameter-gradient one and a representation-gradient one.
QUICK_METHODS = ("ew", "uw", "pcgrad", "mgda")

# name -> (module, arguments of the full run, arguments of --quick).
BENCHMARKS = {
    "trainer_overhead_small": (
        "trainer_overhead", ["--sizes", "small", "--jit"], ["--sizes", "small", "--steps", "20", "--repeats", "3"]),
    "trainer_overhead_large": (
        "trainer_overhead", ["--sizes", "large", "--jit"], ["--sizes", "large", "--steps", "5", "--repeats", "3"]),
    # Each runner in its own process, 5 rounds (about 25 minutes on 2 idle CPU cores).
    "trainer_overhead_per_process": (
        "trainer_overhead_per_process", [],
        ["--sizes", "small", "--steps", "10", "--calls", "2", "--repeats", "2"]),
    "shared_input_step_time": (
        "shared_input_step_time", [], ["--tasks", "2", "8", "--steps", "5", "--repeats", "3"]),
    "weighting_step_time": (
        "weighting_step_time", [], ["--steps", "10", "--repeats", "3", "--methods", *QUICK_METHODS]),
    # The full run trains 192 models (about 45 minutes on 2 CPU cores); --quick: shapes, 3 methods, 1 seed.
    "quality": ("quality", [], ["--quick"]),
}
# Modules that record their own results (they take --name and --results_dir).
SELF_RECORDING = ("trainer_overhead", "trainer_overhead_per_process")


def run_child(module: str, args, out: str):
    """Runs `python -m benchmarks.<module> <args> --out <out>` from the repository root.

    Its output goes to this process's stdout as it comes, and is kept.

    Returns:
      `(return code, wall seconds, peak RSS of the child in MiB, its stdout)`.
    """
    command = [sys.executable, "-m", f"benchmarks.{module}", *args, "--out", out]
    print(f"\n$ python {' '.join(command[1:])}", flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{record.LAUNCHED_BY_ENV: record.command_line()})
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    # wait4, not wait: it returns this child's own rusage (its peak RSS).
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - start, timing.max_rss_mib(usage), "".join(lines)


def _table_lines(stdout: str) -> str:
    """A child's printed output without TF's log lines and the "Wrote <scratch file>" line."""
    lines = [line for line in stdout.strip().splitlines()
             if not line.startswith("Wrote ") and not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ", line)]
    return "\n".join(lines).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and rounds: checks that all runs")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--out", default="benchmarks_results.json")
    parser.add_argument("--results_dir", default=None,
                        help=f"where each benchmark's table and JSON are recorded (default {record.RESULTS_DIR}, "
                             "with --quick none); empty: record nothing")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    results_dir = args.results_dir if args.results_dir is not None else (
        "" if args.quick else str(record.RESULTS_DIR))
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.only:
            module, full_args, quick_args = BENCHMARKS[name]
            child_args = list(quick_args if args.quick else full_args)
            command = f"python -m benchmarks.{module} {' '.join(child_args)}".strip()
            if module in SELF_RECORDING:
                child_args += ["--name", name, "--results_dir", results_dir]
            env = record.environment(command)
            child_out = os.path.join(scratch, f"{name}.json")
            code, seconds, peak, stdout = run_child(module, child_args, child_out)
            entry = {"command": command, "returncode": code,
                     "wall_seconds": seconds, "peak_rss_mib": peak, "results": None}
            if code == 0:
                with open(child_out, encoding="utf-8") as stream:
                    entry["results"] = json.load(stream)
                if results_dir and module not in SELF_RECORDING:
                    body = (f"Wall time {seconds:.0f} s, peak RSS {peak:.0f} MiB. The table as printed:\n\n"
                            f"```text\n{_table_lines(stdout)}\n```\n")
                    paths = record.write(name, name, body, entry, env, results_dir)
                    print("Recorded " + " and ".join(str(path) for path in paths))
            results[name] = entry
    print(f"\n{'benchmark':<30} {'status':<8} {'wall s':>7} {'peak RSS MiB':>13}")
    for name, entry in results.items():
        status = "ok" if entry["returncode"] == 0 else f"rc {entry['returncode']}"
        print(f"{name:<30} {status:<8} {entry['wall_seconds']:>7.0f} {entry['peak_rss_mib']:>13.0f}")
    with open(out, "w", encoding="utf-8") as stream:
        json.dump({"quick": args.quick, "benchmarks": results}, stream, indent=2)
    print(f"\nWrote {out}")
    if any(entry["returncode"] for entry in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
