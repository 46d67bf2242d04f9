"""Shared measuring helpers of the benchmarks: interleaved timing and peak RSS."""
import gc
import resource
import statistics
import sys
import time

import tensorflow as tf

# Each benchmarked orbit trainer traces its own copy of orbit's loop function,
# which TF reports as "retracing" from the fifth trainer on.
tf.get_logger().setLevel("ERROR")


def interleaved_round_times(trainers, steps: int, repeats: int):
    """Seconds per step of each trainer in every round, timed in turn (A, B, ..., A, B, ...).

    Every trainer is called once untimed first (it traces its loop). Timing
    every trainer once per round spreads slow phases of the machine over all
    of them instead of over the few measured at that moment; garbage is
    collected before each timed call so that no trainer pays for another's.

    Args:
      trainers: `{key: trainer}`; a trainer has `train(num_steps)` taking a
        scalar int tensor and returning when the steps are done.
      steps: Steps per timed call.
      repeats: Rounds.

    Returns:
      `{key: [seconds per step in round 0, round 1, ...]}`.
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
    return times


def paired_speedup(times, key, reference) -> float:
    """The median over rounds of `reference`'s time over `key`'s in the same round.

    Runners timed next to each other share the machine's phase, so a ratio
    within a round is steadier than the ratio of two medians.
    """
    return statistics.median(ref / own for own, ref in zip(times[key], times[reference]))


def max_rss_mib(usage) -> float:
    """`ru_maxrss` of a `resource.struct_rusage` in MiB (kilobytes on Linux, bytes on macOS)."""
    unit = 1 if sys.platform == "darwin" else 1024
    return usage.ru_maxrss * unit / 2**20


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far, in MiB."""
    return max_rss_mib(resource.getrusage(resource.RUSAGE_SELF))
