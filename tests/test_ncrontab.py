"""NCRONTAB schedules for the local host's timer: parsing and next occurrences."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from shared.devhost.timer import TimerWorker
from shared.ncrontab import Schedule


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("expression, after, expected", [
    ("0 0 6 * * *", at(2026, 3, 1, 5, 59, 59), at(2026, 3, 1, 6, 0, 0)),
    ("0 0 6 * * *", at(2026, 3, 1, 6, 0, 0), at(2026, 3, 2, 6, 0, 0)),  # strictly after
    ("0 0 6 * * *", at(2026, 12, 31, 7), at(2027, 1, 1, 6)),
    ("*/15 * * * * *", at(2026, 1, 1, 0, 0, 14), at(2026, 1, 1, 0, 0, 15)),
    ("0 */5 * * * *", at(2026, 1, 1, 0, 58, 0), at(2026, 1, 1, 1, 0, 0)),
    ("0 30 9 * * 1-5", at(2026, 1, 2, 10), at(2026, 1, 5, 9, 30)),  # Fri → Mon
    ("0 30 9 * * Mon-Fri", at(2026, 1, 2, 10), at(2026, 1, 5, 9, 30)),
    ("0 0 0 31 * *", at(2026, 1, 31, 1), at(2026, 3, 31)),  # February skipped
    ("0 0 0 29 2 *", at(2026, 1, 1), at(2028, 2, 29)),
    ("0 0 0 13 * 5", at(2026, 1, 1), at(2026, 2, 13)),  # Friday the 13th: both must match
    ("5/20 0 0 1 jan *", at(2026, 1, 1, 0, 0, 5), at(2026, 1, 1, 0, 0, 25)),
    ("0 0 12 1,15 * *", at(2026, 1, 1, 12), at(2026, 1, 15, 12)),
])
def test_next_occurrence(expression, after, expected):
    assert Schedule.parse(expression).next_after(after) == expected


@pytest.mark.parametrize("expression, fragment", [
    ("0 0 6 * *", "6 fields"),
    ("0 0 6 * * * *", "6 fields"),
    ("60 0 6 * * *", "second field: 60 is outside 0-59"),
    ("0 0 24 * * *", "hour field"),
    ("0 0 0 0 * *", "day field: 0 is outside 1-31"),
    ("0 0 0 * 13 *", "month field"),
    ("0 0 0 * * 7", "day-of-week field"),
    ("0 0 0 * * fun", "not a number"),
    ("*/0 * * * * *", "outside"),
    ("0 0 5-1 * * *", "runs backwards"),
])
def test_bad_schedules_name_their_field(expression, fragment):
    with pytest.raises(ValueError, match=fragment):
        Schedule.parse(expression)


def test_an_impossible_schedule_says_so():
    with pytest.raises(ValueError, match="never fires"):
        Schedule.parse("0 0 0 30 2 *").next_after(at(2026, 1, 1))


def test_the_timer_worker_calls_the_function_at_each_occurrence():
    calls = []
    stop = threading.Event()

    def function(timer):
        calls.append(timer.past_due)
        if len(calls) == 2:
            stop.set()

    worker = TimerWorker("t", Schedule.parse("* * * * * *"), function)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and calls == [False, False]
