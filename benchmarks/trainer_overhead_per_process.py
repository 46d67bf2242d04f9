"""Trainer overhead with every runner in a fresh process of its own: the way a user runs one job.

    python -m benchmarks.trainer_overhead_per_process [--sizes small large] [--repeats 5]
        [--schedules joint interleaving] [--steps 100] [--calls 5] [--keras_adam] [--rep_grad_methods mgda]
        [--out trainer_overhead_per_process.json] [--results_dir benchmarks/results]

The workload and the runners are `benchmarks.trainer_overhead`'s: the
hand-written Keras 3 loop, Model Garden's tf_keras trainers and ours, joint
and interleaving, on the `small` and `large` shared MLPs (`--keras_adam` adds
our trainers with `keras.optimizers.Adam`). Besides, per size, our joint
trainer on one input labelled for all three tasks (schedule `joint, shared
input`: an `EncoderHeadsModel`, the encoder once per step), plain (`ours`)
and balanced by each `--rep_grad_methods` method with `rep_grad` (`ours
<method> rep_grad`), for the cost of a gradient method on the representation
relative to the plain step.

Each measurement is one fresh `python -m benchmarks.trainer_overhead_per_process
--child ...` process that imports the workload, builds one runner, calls
`train(--steps)` once untimed (tracing, first use of the thread pools and
allocators) and then `--calls` times timed, each call after a garbage
collection, in wall time and in the process's CPU time (user + system of all
its threads, `time.process_time`). A round runs every runner once, one after
the other, the order rotated by one runner each round; `--repeats` rounds.

Reported per runner (medians over rounds):

- steady examples per second and per CPU-second: examples of the timed calls
  over their wall and CPU seconds;
- cores busy: CPU over wall seconds of the timed calls (above 1: TF ran
  ops on both cores at once, or its threads spun waiting for work, which
  costs CPU time and not wall time; below 1: the process waited for a core,
  i.e. something else was running on the machine and the round is suspect);
- start-up and teardown: the child's seconds (wall and CPU) to import, to
  build the runner, for the untimed first call, and from the end of the
  last timed call to the process's exit;
- whole job: examples of all calls over the child's whole wall and CPU time
  (from launch to exit; CPU time from `wait4`'s rusage), i.e. what a job of
  `--calls + 1` loops costs with its start-up.

and, per size and schedule, the median over rounds of the ratio within a
round of our speed to Model Garden's and to the loop's (each measure), and
of the plain shared-input step's speed to each rep_grad method's (its cost,
x the plain step).

The JSON keeps every call's wall and CPU seconds, and the rusage of the
timed calls (user and system time, page faults, context switches), per
child. The parent process imports no TensorFlow and waits while a child
runs. On 2 idle CPU cores the default run (both sizes, 16 processes a
round, 5 rounds) takes about 25 minutes; run it on an otherwise idle
machine (the recorded header gives the load average at the start).
Each run writes its tables and JSON (command, machine, versions, commit)
to `--results_dir` as `<--name>-<date>.{md,json}` (`benchmarks.record`).
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import record

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES = ("small", "large")
JOINT, INTERLEAVING, SHARED = "joint", "interleaving", "joint, shared input"
# Runner names, as in benchmarks.trainer_overhead.
LOOP, MODEL_GARDEN, OURS, OURS_KERAS_ADAM = "keras3 loop", "model garden", "ours", "ours keras-adam"
# The child's launch time (the parent's time.time()), for the child's wall clock since launch.
_LAUNCH_ENV = "BENCHMARK_LAUNCH_TIME"
# rusage fields a child reports over its timed calls.
_RUSAGE = ("ru_utime", "ru_stime", "ru_minflt", "ru_majflt", "ru_nvcsw", "ru_nivcsw")
# Measures of a child run, each `(examples, seconds)` -> examples per second.
MEASURES = {
    "wall": "steady ex/s",
    "cpu": "steady ex/CPU-s",
    "job_wall": "whole job ex/s",
    "job_cpu": "whole job ex/CPU-s",
}


def rep_grad_runner(method: str) -> str:
    return f"ours {method} rep_grad"


def examples_per_step(schedule: str) -> int:
    """Examples one step trains on (one batch of 256 per task jointly, else one batch)."""
    return 256 * (3 if schedule == JOINT else 1)


def units(sizes, keras_adam: bool, rep_grad_methods, schedules=(JOINT, INTERLEAVING)):
    """The `(size, schedule, runner)` measured in every round, in the order of round 0."""
    found = []
    for size in sizes:
        for schedule in schedules:
            found += [(size, schedule, runner) for runner in (LOOP, MODEL_GARDEN, OURS)]
            if keras_adam:
                found.append((size, schedule, OURS_KERAS_ADAM))
        if rep_grad_methods:
            found += [(size, SHARED, OURS)] + [(size, SHARED, rep_grad_runner(m)) for m in rep_grad_methods]
    return found


# The child: one runner, one process.


def _now(launch: float):
    """`(wall seconds since launch, CPU seconds of this process so far)`."""
    return time.time() - launch, time.process_time()


def _since(start, end):
    return {"wall": end[0] - start[0], "cpu": end[1] - start[1]}


def child(size: str, schedule: str, runner: str, steps: int, calls: int, out: str) -> None:
    """Builds and times one runner in this process; writes its phases and timed calls to `out`."""
    launch = float(os.environ.get(_LAUNCH_ENV, time.time()))
    started = _now(launch)  # the interpreter's start-up
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf

    from benchmarks import timing
    from benchmarks import trainer_overhead as workload

    timing.quiet_tf_logs()
    imported = _now(launch)
    widths = workload.SIZES[size]
    if schedule == SHARED:
        method = None if runner == OURS else runner.split()[1]
        trainer = workload.ours_shared_input(widths, method)
    else:
        trainer = workload.builders(widths)[runner](schedule)
    built = _now(launch)
    trainer.train(tf.constant(steps))
    first = _now(launch)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    timed = [timing.timed_call(trainer.train, tf.constant(steps)) for _ in range(calls)]
    done = _now(launch)
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "phases": {"python": {"wall": started[0], "cpu": started[1]}, "import": _since(started, imported),
                   "build": _since(imported, built), "first_call": _since(built, first),
                   "timed_calls": _since(first, done), "until_exit": {"wall": done[0], "cpu": done[1]}},
        "calls": [{"wall": wall, "cpu": cpu} for wall, cpu in timed],
        # Over the timed calls: user and system CPU seconds, page faults, context switches.
        "timed_rusage": {field: getattr(usage_after, field) - getattr(usage_before, field) for field in _RUSAGE},
        "peak_rss_mib": timing.peak_rss_mib(),
    }
    with open(out, "w", encoding="utf-8") as stream:
        json.dump(result, stream)


# The parent: rounds of children.


def run_child(unit, steps: int, calls: int, scratch: str):
    """Runs one child process for `unit`; returns its result with "total" and "examples", or with "error"."""
    size, schedule, runner = unit
    out = os.path.join(scratch, "child.json")
    log = os.path.join(scratch, "child.log")
    if os.path.exists(out):
        os.remove(out)
    command = [sys.executable, "-m", "benchmarks.trainer_overhead_per_process", "--child", size, schedule, runner,
               "--steps", str(steps), "--calls", str(calls), "--child_out", out]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    with open(log, "w", encoding="utf-8") as stream:
        start = time.perf_counter()
        env[_LAUNCH_ENV] = repr(time.time())
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT)
        # wait4: this child's own rusage (CPU time and peak RSS), not all children's.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not os.path.exists(out):
        with open(log, encoding="utf-8", errors="replace") as stream:
            tail = stream.read()[-3000:]
        return {"error": f"exit code {code}", "log_tail": tail}
    with open(out, encoding="utf-8") as stream:
        result = json.load(stream)
    result["total"] = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}
    # From the last timed call's end to the process's exit (TF's and Python's teardown).
    result["phases"]["exit"] = {clock: result["total"][clock] - result["phases"]["until_exit"][clock]
                                for clock in ("wall", "cpu")}
    result["examples"] = {"per_call": examples_per_step(schedule) * steps, "calls": calls}
    return result


def rates(result):
    """`{measure: examples per second}` of one child's result (see `MEASURES`)."""
    per_call, calls = result["examples"]["per_call"], result["examples"]["calls"]
    wall = sum(call["wall"] for call in result["calls"])
    cpu = sum(call["cpu"] for call in result["calls"])
    return {"wall": per_call * calls / wall, "cpu": per_call * calls / cpu,
            "job_wall": per_call * (calls + 1) / result["total"]["wall"],
            "job_cpu": per_call * (calls + 1) / result["total"]["cpu"]}


def paired_ratio(runs, unit, reference, measure: str):
    """The median over rounds of `unit`'s speed over `reference`'s in the same round (None if no round has both)."""
    ratios = [own[measure] / ref[measure] for own, ref in zip(runs[unit], runs[reference])
              if own is not None and ref is not None]
    return statistics.median(ratios) if ratios else None


def summarize(results, units_measured):
    """Medians per runner and within-round ratios from `{unit: [child result per round]}`."""
    runs = {unit: [None if "error" in r else rates(r) for r in results[unit]] for unit in units_measured}
    rows = []
    for unit in units_measured:
        ok = [r for r in results[unit] if "error" not in r]
        size, schedule, runner = unit
        row = {"size": size, "schedule": schedule, "runner": runner, "rounds_ok": len(ok),
               "rounds_failed": len(results[unit]) - len(ok)}
        if ok:
            row.update({measure: statistics.median(r[measure] for r in runs[unit] if r is not None)
                        for measure in MEASURES})
            row["cores_busy"] = statistics.median(
                sum(c["cpu"] for c in r["calls"]) / sum(c["wall"] for c in r["calls"]) for r in ok)
            for phase in ("python", "import", "build", "first_call", "exit"):
                for clock in ("wall", "cpu"):
                    row[f"{phase}_{clock}_s"] = statistics.median(r["phases"][phase][clock] for r in ok)
            row["total_wall_s"] = statistics.median(r["total"]["wall"] for r in ok)
            row["total_cpu_s"] = statistics.median(r["total"]["cpu"] for r in ok)
            row["peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in ok)
        rows.append(row)
    ratios = []
    for size, schedule in dict.fromkeys((u[0], u[1]) for u in units_measured):
        present = {u[2] for u in units_measured if u[:2] == (size, schedule)}
        if schedule == SHARED:
            for runner in sorted(present - {OURS}):
                ratios.append({"size": size, "schedule": schedule, "runner": runner, "reference": OURS,
                               "kind": "cost",  # x the plain step's time: plain speed / this speed
                               **{m: paired_ratio(runs, (size, schedule, OURS), (size, schedule, runner), m)
                                  for m in MEASURES}})
            continue
        for runner in (OURS, OURS_KERAS_ADAM):
            if runner not in present:
                continue
            for reference in (MODEL_GARDEN, LOOP):
                if reference in present:
                    ratios.append({"size": size, "schedule": schedule, "runner": runner, "reference": reference,
                                   "kind": "speed",
                                   **{m: paired_ratio(runs, (size, schedule, runner), (size, schedule, reference), m)
                                      for m in MEASURES}})
    return rows, ratios


def _fmt(value, digits=0):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(rows, ratios, args) -> str:
    """The run's tables in Markdown."""
    out = [f"Each runner in a fresh process: one untimed `train({args.steps})` call, then {args.calls} timed "
           f"calls; {args.repeats} rounds, runner order rotated each round. Medians over rounds.", ""]
    out.append(record.markdown_table(
        ["size", "schedule", "runner"] + list(MEASURES.values()) + ["cores busy", "rounds"],
        [[r["size"], r["schedule"], r["runner"]] + [_fmt(r.get(m)) for m in MEASURES]
         + [_fmt(r.get("cores_busy"), 2), f"{r['rounds_ok']}" + (f" ({r['rounds_failed']} failed)"
                                                                  if r["rounds_failed"] else "")]
         for r in rows], "lll" + "r" * (len(MEASURES) + 2)))
    speed = [r for r in ratios if r["kind"] == "speed"]
    if speed:
        out += ["Our speed relative to each reference: the median over rounds of the ratio within a round "
                "(≥ 1 is faster):", ""]
        out.append(record.markdown_table(
            ["size", "schedule", "runner", "reference"] + list(MEASURES.values()),
            [[r["size"], r["schedule"], r["runner"], r["reference"]] + [_fmt(r[m], 3) for m in MEASURES]
             for r in speed], "llll" + "r" * len(MEASURES)))
    cost = [r for r in ratios if r["kind"] == "cost"]
    if cost:
        out += ["Cost of a gradient method with rep_grad, × the plain shared-input step (the median over rounds "
                "of the plain runner's speed over the method's within a round; ≤ 1.5 is the target):", ""]
        out.append(record.markdown_table(
            ["size", "runner", "reference"] + list(MEASURES.values()),
            [[r["size"], r["runner"], r["reference"]] + [_fmt(r[m], 3) for m in MEASURES] for r in cost],
            "lll" + "r" * len(MEASURES)))
    out += ["Start-up and teardown per process (seconds, wall / CPU): interpreter, imports, building the "
            "runner, the untimed first call (tracing), from the last timed call to the exit; whole process from "
            "launch to exit:", ""]
    out.append(record.markdown_table(
        ["size", "schedule", "runner", "python", "import", "build", "first call", "exit", "whole process",
         "peak RSS MiB"],
        [[r["size"], r["schedule"], r["runner"]]
         + [f"{_fmt(r.get(f'{p}_wall_s'), 1)} / {_fmt(r.get(f'{p}_cpu_s'), 1)}"
            for p in ("python", "import", "build", "first_call", "exit")]
         + [f"{_fmt(r.get('total_wall_s'), 1)} / {_fmt(r.get('total_cpu_s'), 1)}", _fmt(r.get("peak_rss_mib"))]
         for r in rows if r["rounds_ok"]], "lll" + "r" * 7))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--schedules", nargs="+", choices=(JOINT, INTERLEAVING), default=[JOINT, INTERLEAVING])
    parser.add_argument("--steps", type=int, default=100, help="steps per train() call")
    parser.add_argument("--calls", type=int, default=5, help="timed train() calls per process")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (each runs every runner once)")
    parser.add_argument("--keras_adam", action="store_true",
                        help="also run our trainers with keras.optimizers.Adam (the loop's optimizer)")
    parser.add_argument("--rep_grad_methods", nargs="*", default=["mgda"],
                        help="gradient methods timed with rep_grad on the shared input (none: skip)")
    parser.add_argument("--out", default="trainer_overhead_per_process.json")
    parser.add_argument("--name", default="trainer_overhead_per_process",
                        help="file name stem of the recorded results")
    parser.add_argument("--results_dir", default=str(record.RESULTS_DIR),
                        help="where the table and JSON are recorded; empty: record nothing")
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "SCHEDULE", "RUNNER"), help=argparse.SUPPRESS)
    parser.add_argument("--child_out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, steps=args.steps, calls=args.calls, out=args.child_out)
        return
    env = record.environment()
    measured = units(args.sizes, args.keras_adam, args.rep_grad_methods, args.schedules)
    results = {unit: [] for unit in measured}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.repeats):
            shift = round_index % len(measured)
            for unit in measured[shift:] + measured[:shift]:
                result = run_child(unit, args.steps, args.calls, scratch)
                results[unit].append(result)
                label = f"round {round_index + 1}/{args.repeats} {unit[0]:<5} {unit[1]:<19} {unit[2]:<20}"
                if "error" in result:
                    print(f"{label} FAILED ({result['error']}):\n{result['log_tail']}", flush=True)
                else:
                    r = rates(result)
                    print(f"{label} {r['wall']:>9.0f} ex/s {r['cpu']:>9.0f} ex/CPU-s "
                          f"{result['total']['wall']:>6.1f} s", flush=True)
    rows, ratios = summarize(results, measured)
    body = markdown(rows, ratios, args)
    print("\n" + body)
    payload = {"steps": args.steps, "calls": args.calls, "repeats": args.repeats,
               "wall_seconds": time.perf_counter() - start, "rows": rows, "ratios": ratios,
               "runs": [{"size": u[0], "schedule": u[1], "runner": u[2], "rounds": results[u]} for u in measured]}
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump(payload, stream, indent=2)
    print(f"\nWrote {args.out}")
    if args.results_dir:
        paths = record.write(args.name, "Trainer overhead, one process per runner", body, payload, env,
                             args.results_dir)
        print("Recorded " + " and ".join(str(path) for path in paths))
    if any(row["rounds_failed"] for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
