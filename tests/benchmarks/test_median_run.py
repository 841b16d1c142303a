"""The goals at N = 1000 are held to the median of several runs of ``deploy wait`` (single runs
spread by a quarter on a shared machine); peak memory to the highest of them."""

from __future__ import annotations

from benchmarks.rollout import Measured, median_run


def _run(beyond: float, cpu: float, rss: float | None, wall: float) -> Measured:
    return Measured(1000, 4, wall, beyond, 16, 8, cpu, rss, {"process_wall_s": wall + 1})


def test_medians_of_time_and_the_highest_peak() -> None:
    runs = [_run(1.3, 3.9, 75.0, 9.0), _run(0.8, 2.5, 77.5, 7.0), _run(0.9, 2.7, None, 8.0)]
    summary = median_run(runs)
    assert (summary.beyond, summary.cpu, summary.wall) == (0.9, 2.7, 8.0)
    assert summary.rss_mb == 77.5
    assert (summary.requests, summary.watches, summary.namespaces) == (16, 8, 4)
    assert [r["beyond_s"] for r in summary.extra["runs"]] == [1.3, 0.8, 0.9]
    assert summary.extra["process_wall_s"] == 9.0  # of the run with the median beyond: 0.9 s


def test_one_run_is_its_own_summary() -> None:
    run = _run(0.9, 2.7, 75.0, 8.0)
    assert median_run([run]) is run
