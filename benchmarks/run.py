"""Runs the benchmarks, prints their tables and writes all results to one JSON.

    python -m benchmarks.run [--quick] [--only NAME ...] [--out benchmarks_results.json]

Each benchmark runs in a process of its own (`python -m benchmarks.<module>`),
so that its peak resident set size, read from the child's `rusage` when it
exits, is that workload's alone, and one benchmark's memory or threads never
slow the next. The children print their tables as they go; the JSON holds,
per benchmark, the command, its wall time, its peak RSS and the results the
module wrote. `--quick` runs fewer steps, rounds, task counts and weighting
methods (a few minutes on 2 CPU cores, for checking that everything runs;
its numbers are noisy); the full run is what the README's tables come from.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

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
    "shared_input_step_time": (
        "shared_input_step_time", [], ["--tasks", "2", "8", "--steps", "5", "--repeats", "3"]),
    "weighting_step_time": (
        "weighting_step_time", [], ["--steps", "10", "--repeats", "3", "--methods", *QUICK_METHODS]),
    # The full run trains 192 models (about 45 minutes on 2 CPU cores); --quick: shapes, 3 methods, 1 seed.
    "quality": ("quality", [], ["--quick"]),
}


def run_child(module: str, args, out: str):
    """Runs `python -m benchmarks.<module> <args> --out <out>` from the repository root.

    Returns:
      `(return code, wall seconds, peak RSS of the child in MiB)`.
    """
    command = [sys.executable, "-m", f"benchmarks.{module}", *args, "--out", out]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    # wait4, not wait: it returns this child's own rusage (its peak RSS).
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - start, timing.max_rss_mib(usage)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and rounds: checks that all runs")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--out", default="benchmarks_results.json")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.only:
            module, full_args, quick_args = BENCHMARKS[name]
            child_args = quick_args if args.quick else full_args
            child_out = os.path.join(scratch, f"{name}.json")
            code, seconds, peak = run_child(module, child_args, child_out)
            entry = {"command": f"python -m benchmarks.{module} {' '.join(child_args)}", "returncode": code,
                     "wall_seconds": seconds, "peak_rss_mib": peak, "results": None}
            if code == 0:
                with open(child_out, encoding="utf-8") as stream:
                    entry["results"] = json.load(stream)
            results[name] = entry
    print(f"\n{'benchmark':<24} {'status':<8} {'wall s':>7} {'peak RSS MiB':>13}")
    for name, entry in results.items():
        status = "ok" if entry["returncode"] == 0 else f"rc {entry['returncode']}"
        print(f"{name:<24} {status:<8} {entry['wall_seconds']:>7.0f} {entry['peak_rss_mib']:>13.0f}")
    with open(out, "w", encoding="utf-8") as stream:
        json.dump({"quick": args.quick, "benchmarks": results}, stream, indent=2)
    print(f"\nWrote {out}")
    if any(entry["returncode"] for entry in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
