"""Writes a benchmark run's table and JSON under `benchmarks/results/`, with where and how it ran.

Every recorded run leaves two files, `<name>-<YYYY-MM-DD>.md` (the tables as
printed, headed by the command, the machine and the versions) and
`<name>-<YYYY-MM-DD>.json` (the same header as data, plus every measured
number), with `-2`, `-3`, ... added when a run of the same name already has
that day's files. The README quotes only numbers from such committed files.

Standard library only: `benchmarks.trainer_overhead_per_process` uses it in
its parent process, which imports no TensorFlow.
"""
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
# Distributions whose versions a result names (absent ones are left out).
# Set by `benchmarks.run` for its children: the command that started them.
LAUNCHED_BY_ENV = "BENCHMARK_LAUNCHED_BY"
PACKAGES = ("tensorflow", "keras", "tf-models-official", "tf-keras", "orbit", "numpy", "gin-config")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(packages: Sequence[str] = PACKAGES) -> Dict[str, str]:
    """`{distribution: version}` of the installed `packages`, and of Python.

    orbit has no distribution of its own here: it ships inside
    tf-models-official, which is then named as its version.
    """
    found = {"python": platform.python_version()}
    owners = importlib.metadata.packages_distributions()
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            dists = owners.get(package, [])
            if dists:
                found[package] = f"{importlib.metadata.version(dists[0])} (in {dists[0]})"
    return found


def git_state() -> Dict[str, Any]:
    """The checked-out commit and the paths that differ from it, untracked ones too (`git status --porcelain`)."""
    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "changed_paths": []}
    return {"commit": commit, "changed_paths": changed}


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """This process's command as a user would type it (`python -m benchmarks.<module> ...`)."""
    argv = list(sys.argv if argv is None else argv)
    module = sys.modules["__main__"].__spec__
    program = f"python -m {module.name}" if module is not None else f"python {argv[0]}"
    return " ".join([program] + [shlex.quote(arg) for arg in argv[1:]])


def environment(command: Optional[str] = None) -> Dict[str, Any]:
    """Where and how a run happens: time, command, machine, versions, commit."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    env = {
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command or command_line(),
        "machine": {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable,
                    "platform": platform.platform(), "load_average_at_start": list(os.getloadavg())},
        "versions": versions(),
        "git": git_state(),
        "environment_variables": {key: value for key, value in os.environ.items()
                                  if key.startswith(("TF_", "OMP_", "KMP_", "XLA_", "KERAS_"))},
    }
    if os.environ.get(LAUNCHED_BY_ENV):
        env["launched_by"] = os.environ[LAUNCHED_BY_ENV]
    return env


def header_markdown(title: str, env: Dict[str, Any]) -> str:
    """The Markdown lines that say what ran where."""
    machine, git = env["machine"], env["git"]
    changed = git["changed_paths"]
    commit = (git["commit"] or "unknown")[:12] + (f" with {len(changed)} changed files" if changed else "")
    load = ", ".join(f"{x:.2f}" for x in machine["load_average_at_start"])
    lines = [
        f"# {title}",
        "",
        f"- command: `{env['command']}`" + (f" (run by `{env['launched_by']}`)" if env.get("launched_by") else ""),
        f"- date: {env['timestamp']}",
        f"- machine: {machine['cpu_model']}, {machine['usable_cores']} usable of {machine['logical_cores']} "
        f"logical cores; load average at start {load}",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in env["versions"].items()),
        f"- commit: {commit}",
    ]
    return "\n".join(lines) + "\n"


def _free_stem(directory: pathlib.Path, name: str, date: str) -> str:
    stem, n = f"{name}-{date}", 1
    while (directory / f"{stem}.md").exists() or (directory / f"{stem}.json").exists():
        n += 1
        stem = f"{name}-{date}-{n}"
    return stem


def write(name: str, title: str, body_markdown: str, results: Any, env: Dict[str, Any],
          directory=RESULTS_DIR) -> Tuple[pathlib.Path, pathlib.Path]:
    """Writes `<directory>/<name>-<date>.md` and `.json`.

    Args:
      name: The benchmark's name (file names start with it).
      title: The Markdown file's heading.
      body_markdown: The tables, below the header that `environment` fills.
      results: JSON-serialisable measurements.
      env: `environment()` of the run, taken when it started.
      directory: Where to write (created if missing).

    Returns:
      The paths of the Markdown and JSON files.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = _free_stem(directory, name, env["timestamp"][:10])
    md_path, json_path = directory / f"{stem}.md", directory / f"{stem}.json"
    md_path.write_text(header_markdown(title, env) + "\n" + body_markdown.rstrip() + "\n", encoding="utf-8")
    with open(json_path, "w", encoding="utf-8") as stream:
        json.dump({"name": name, **env, "results": results}, stream, indent=2)
        stream.write("\n")
    return md_path, json_path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Optional[str] = None) -> str:
    """A Markdown table; `align` has one character per column, "l" or "r" (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
