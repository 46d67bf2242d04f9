"""Shared measuring helpers of the benchmarks: interleaved timing, CPU time and peak RSS."""
import gc
import resource
import statistics
import sys
import time


def quiet_tf_logs() -> None:
    """Silences TF's Python warnings.

    Each benchmarked orbit trainer traces its own copy of orbit's loop
    function, which TF reports as "retracing" from the fifth trainer on.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.get_logger().setLevel("ERROR")


def timed_call(fn, *args):
    """Runs `fn(*args)` after a garbage collection; returns `(wall seconds, CPU seconds)`.

    CPU seconds are this process's user + system time (`time.process_time`),
    summed over all its threads: TF's inter- and intra-op pools and tf.data's
    threads included, so a runner that keeps the second core busy (or spins
    its threads waiting for work) pays for it here and not in wall time.
    """
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved_round_measures(trainers, steps: int, repeats: int, rotate: bool = False):
    """Wall and CPU seconds per step of each trainer in every round, timed in turn.

    Every trainer is called once untimed first (it traces its loop). Timing
    every trainer once per round spreads slow phases of the machine over all
    of them instead of over the few measured at that moment; garbage is
    collected before each timed call so that no trainer pays for another's.

    Args:
      trainers: `{key: trainer}`; a trainer has `train(num_steps)` taking a
        scalar int tensor and returning when the steps are done.
      steps: Steps per timed call.
      repeats: Rounds.
      rotate: Start round r at the r-th trainer (A, B, C, then B, C, A, ...),
        so that no trainer always follows the same one.

    Returns:
      `({key: [wall seconds per step in round 0, round 1, ...]}, {key: [CPU seconds per step, ...]})`.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    quiet_tf_logs()
    for trainer in trainers.values():
        trainer.train(tf.constant(steps))
    keys = list(trainers)
    wall = {key: [] for key in keys}
    cpu = {key: [] for key in keys}
    for round_index in range(repeats):
        shift = round_index % len(keys) if rotate and keys else 0
        for key in keys[shift:] + keys[:shift]:
            seconds, cpu_seconds = timed_call(trainers[key].train, tf.constant(steps))
            wall[key].append(seconds / steps)
            cpu[key].append(cpu_seconds / steps)
    return wall, cpu


def interleaved_round_times(trainers, steps: int, repeats: int):
    """Seconds per step of each trainer in every round, timed in turn (A, B, ..., A, B, ...).

    `interleaved_round_measures` without rotation, wall time only.

    Returns:
      `{key: [seconds per step in round 0, round 1, ...]}`.
    """
    return interleaved_round_measures(trainers, steps, repeats)[0]


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
