"""The event-loop lag watcher: a loop held busy shows as lag, an idle one as next to none."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from bridge.live.loop_lag import LagCounts, watch_loop_lag
from bridge.loadtest.run import LoadResult, is_clean, steady_lag
from quality.lag import LAG_BOUNDS_S


async def test_a_blocked_loop_shows_as_lag_of_about_the_time_it_was_blocked() -> None:
    lags: list[float] = []
    watcher = asyncio.create_task(watch_loop_lag(lags.append, period_s=0.005))
    await asyncio.sleep(0.1)
    idle = list(lags)
    time.sleep(0.06)  # one callback holds the loop, as a burst of work for other calls would
    await asyncio.sleep(0.05)
    watcher.cancel()
    assert len(idle) >= 5 and min(idle) < 0.005
    assert 0.05 <= max(lags) < 0.5
    assert all(lag >= 0.0 for lag in lags)


def _run(lag_p99_ms: float) -> LoadResult:
    latency = {"p50": 0.1, "p99": 0.4, "max": 2.0}
    return LoadResult(options={"calls": 100}, calls={"started": 100, "completed": 100, "failed": 0},
                      deadline_misses={"inbound": 0, "outbound": 0},
                      bridge_latency_ms={"inbound": latency, "outbound": latency},
                      event_loop_lag_ms={"p50": 0.5, "p99": lag_p99_ms, "max": lag_p99_ms})


def test_a_run_is_clean_only_if_the_loop_kept_up_too() -> None:
    assert is_clean(_run(1.2))
    # no late frame by the bridge's own stamps, but frames waited 8 ms unread: saturated
    assert not is_clean(_run(8.0))
    unknown = _run(1.0)
    unknown.event_loop_lag_ms = None
    assert not is_clean(unknown)
    # once all calls were up the loop kept up: the ramp's burst of call setups does not count
    ramped = _run(30.0)
    ramped.steady_loop_lag = {"ticks": 900.0, "p99_ms": 2.0, "over_5ms_pct": 0.4, "over_20ms_pct": 0.0}
    assert is_clean(ramped)
    ramped.steady_loop_lag["p99_ms"] = 6.0
    assert not is_clean(ramped)
    # deadline misses count once all calls are up too: the ramp's are reported, not held against N
    ramped.steady_loop_lag["p99_ms"] = 2.0
    ramped.deadline_misses = {"inbound": 4, "outbound": 0}
    assert not is_clean(ramped)
    ramped.steady_deadline_misses = {"inbound": 0, "outbound": 0}
    assert is_clean(ramped)
    ramped.steady_deadline_misses = {"inbound": 1, "outbound": 0}
    assert not is_clean(ramped)


BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, float("inf"))


@pytest.mark.parametrize(("cumulative", "p99_ms", "over_5", "over_20"), [
    # the per-minute increments of the promtool test of MosbridgeEventLoopLag, where Prometheus'
    # own histogram_quantile(0.99, ...) gives 75 ms, 15 ms and 0.99 ms
    ((0, 0, 50, 120, 200, 980, 1000, 1000, 1000, 1000), 75.0, 95.0, 80.0),
    ((100, 300, 900, 980, 1000, 1000, 1000, 1000, 1000, 1000), 15.0, 10.0, 0.0),
    ((1000,) * 10, 0.99, 0.0, 0.0),
])
def test_steady_lag_is_prometheus_histogram_quantile_between_two_scrapes(
        cumulative: tuple[int, ...], p99_ms: float, over_5: float, over_20: float) -> None:
    before = {b: 5000.0 for b in BOUNDS}  # whatever the ramp left in the histogram
    after = {b: 5000.0 + c for b, c in zip(BOUNDS, cumulative, strict=True)}
    lag = steady_lag(before, after)
    assert lag is not None and lag["ticks"] == 1000
    assert lag["p99_ms"] == pytest.approx(p99_ms)
    assert lag["over_5ms_pct"] == pytest.approx(over_5) and lag["over_20ms_pct"] == pytest.approx(over_20)
    assert steady_lag(after, after) is None  # no tick in between: nothing to say


def test_lag_counts_put_a_tick_on_a_bound_in_that_bucket_and_diff_from_a_snapshot() -> None:
    counts = LagCounts()
    counts.observe(0.0004)
    start = counts.snapshot()
    for lag in (0.001, 0.0011, 0.005, 0.3, 5.0):  # le=0.001 holds 0.001 exactly, as Prometheus' le does
        counts.observe(lag)
    since = counts.cumulative_since(start)
    assert len(since) == len(LAG_BOUNDS_S) and since[-1] == 5
    assert dict(zip(LAG_BOUNDS_S, since, strict=True)) == {
        0.001: 1, 0.002: 2, 0.005: 3, 0.01: 3, 0.02: 3, 0.05: 3, 0.1: 3, 0.25: 3, 1.0: 4, math.inf: 5}
