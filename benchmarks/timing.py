"""Shared measuring helpers of the benchmarks: interleaved timing and peak RSS."""
import gc
import resource
import statistics
import sys
import time

import tensorflow as tf


def interleaved_seconds_per_step(trainers, steps: int, repeats: int):
    """Median seconds per step of each trainer, timed in turn (A, B, ..., A, B, ...).

    Every trainer is called once untimed first (it traces its loop). Timing
    every trainer once per round spreads slow phases of the machine over all
    of them instead of over the few measured at that moment; garbage is
    collected before each timed call so that no trainer pays for another's.

    Args:
      trainers: `{key: trainer}`; a trainer has `train(num_steps)` taking a
        scalar int tensor and returning when the steps are done.
      steps: Steps per timed call.
      repeats: Rounds; the median over them is reported.

    Returns:
      `{key: median seconds per step}`.
    """
    for trainer in trainers.values():
        trainer.train(tf.constant(steps))
    times = {key: [] for key in trainers}
    for _ in range(repeats):
        for key, trainer in trainers.items():
            gc.collect()
            start = time.perf_counter()
            trainer.train(tf.constant(steps))
            times[key].append((time.perf_counter() - start) / steps)
    return {key: statistics.median(values) for key, values in times.items()}


def max_rss_mib(usage) -> float:
    """`ru_maxrss` of a `resource.struct_rusage` in MiB (kilobytes on Linux, bytes on macOS)."""
    unit = 1 if sys.platform == "darwin" else 1024
    return usage.ru_maxrss * unit / 2**20


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far, in MiB."""
    return max_rss_mib(resource.getrusage(resource.RUSAGE_SELF))
