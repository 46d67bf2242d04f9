"""Tests of the benchmarks' timing helpers: interleaved rounds and within-round ratios."""
import pytest

from benchmarks import timing


class _Recorder:
    """A fake trainer that notes each `train` call in a shared log."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def train(self, num_steps):
        self.log.append((self.name, int(num_steps)))


def test_round_times_warm_up_once_then_alternate():
    log = []
    times = timing.interleaved_round_times({"a": _Recorder("a", log), "b": _Recorder("b", log)}, steps=4, repeats=3)
    assert [name for name, _ in log] == ["a", "b"] * 4  # one untimed call each, then three rounds
    assert all(steps == 4 for _, steps in log)
    assert set(times) == {"a", "b"} and all(len(rounds) == 3 for rounds in times.values())
    assert all(seconds >= 0 for rounds in times.values() for seconds in rounds)


def test_paired_speedup_is_the_median_of_within_round_ratios():
    # Round 2 is a slow phase for both; b is twice as slow as a in every round.
    times = {"a": [1.0, 1.1, 3.0], "b": [2.0, 2.2, 6.0]}
    assert timing.paired_speedup(times, "a", "b") == pytest.approx(2.0)
    assert timing.paired_speedup(times, "b", "a") == pytest.approx(0.5)
    # Ratios 3.0, 1.2, 1.1: the median is 1.2 (the ratio of the medians would be 1.5).
    times = {"a": [1.0, 2.0, 4.0], "b": [3.0, 2.4, 4.4]}
    assert timing.paired_speedup(times, "a", "b") == pytest.approx(1.2)
