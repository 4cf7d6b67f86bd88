"""How the simulated-nights benchmark cuts a history into nights."""

import numpy as np
import pytest

from jobs.bench.bench_nights import DAY_S, period_edges


def test_equal_periods_span_the_history_and_the_last_ends_after_the_newest_interaction():
    seconds = np.array([0.0, 50.0, 90.0])
    edges = period_edges(seconds, periods=8)
    assert len(edges) == 9
    assert np.allclose(np.diff(edges), 91 / 9)
    assert edges[-1] > seconds.max()


def test_daily_nights_each_bring_one_day_and_the_first_sees_everything_before():
    seconds = np.arange(0, 60 * DAY_S, 3600.0)
    edges = period_edges(seconds, periods=8, night_days=1)
    assert len(edges) == 9
    assert np.allclose(np.diff(edges), DAY_S)
    assert edges[-1] == seconds.max() + 1
    first_night = seconds < edges[0]
    assert first_night.sum() == pytest.approx(len(seconds) * 52 / 60, abs=2)


def test_daily_nights_that_reach_before_the_history_are_refused():
    with pytest.raises(ValueError, match="before the history"):
        period_edges(np.arange(0, 5 * DAY_S, 3600.0), periods=8, night_days=1)


def test_nights_of_no_days_are_refused():
    with pytest.raises(ValueError, match="positive number of days"):
        period_edges(np.arange(0, 60 * DAY_S, 3600.0), periods=8, night_days=0)
