"""NCRONTAB schedules as Azure Functions timer triggers read them (MONITOR_SCHEDULE is
checked with this parser, and the local host runs timers on it).

Six fields: ``second minute hour day month day-of-week`` (e.g. ``0 0 6 * * *``, daily at
06:00 UTC). Each field is ``*`` or a comma list of ``n``, ``a-b``, ``*/s``, ``a-b/s`` or
``a/s`` (from ``a`` to the end, step ``s``); months and weekdays also take English
three-letter names; Sunday is 0. As in NCrontab (the library the Functions host uses), a
day must match *both* the day-of-month and the day-of-week fields, and the next
occurrence is strictly after the given moment::

    Schedule.parse("0 */5 * * * *").next_after(now)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = (  # name, lowest, highest, names (index + offset = value)
    ("second", 0, 59, None), ("minute", 0, 59, None), ("hour", 0, 23, None),
    ("day", 1, 31, None), ("month", 1, 12, (_MONTHS, 1)), ("day-of-week", 0, 6, (_DAYS, 0)),
)
SEARCH_YEARS = 8  # enough for 29 February on a given weekday; beyond that: never


@dataclass(frozen=True)
class Schedule:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        """Raises ``ValueError`` naming the field that is wrong."""
        parts = expression.split()
        if len(parts) != 6:
            raise ValueError(f"an NCRONTAB schedule has 6 fields (second minute hour day "
                             f"month day-of-week), got {len(parts)} in {expression!r}")
        values = [_field(text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
        seconds, minutes, hours, days, months, weekdays = values
        return cls(tuple(sorted(seconds)), tuple(sorted(minutes)), tuple(sorted(hours)),
                   frozenset(days), frozenset(months), frozenset(weekdays))

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC); ``ValueError`` if none."""
        moment = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        day, earliest = moment.date(), moment.time()
        for _ in range(366 * SEARCH_YEARS):
            if self._runs_on(day):
                at = self._first_time(earliest)
                if at is not None:
                    return datetime.combine(day, at, UTC)
            day, earliest = day + timedelta(days=1), time(0, 0, 0)
        raise ValueError(f"the schedule never fires within {SEARCH_YEARS} years")

    def _runs_on(self, day: date) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python's Monday=0 to cron's Sunday=0
        return day.month in self.months and day.day in self.days and weekday in self.weekdays

    def _first_time(self, earliest: time) -> time | None:
        for hour in self.hours:
            if hour < earliest.hour:
                continue
            for minute in self.minutes:
                if (hour, minute) < (earliest.hour, earliest.minute):
                    continue
                for second in self.seconds:
                    if (hour, minute, second) >= (earliest.hour, earliest.minute,
                                                  earliest.second):
                        return time(hour, minute, second)
        return None


def _field(text: str, name: str, low: int, high: int, names) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = _number(step_text, name, item, None, 1, high - low + 1) if slash else 1
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start = _number(first, name, item, names, low, high)
            end = _number(last, name, item, names, low, high)
            if start > end:
                raise ValueError(f"{name} field: range {item!r} runs backwards")
        else:
            start = _number(span, name, item, names, low, high)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return values


def _number(text: str, name: str, item: str, names, low: int, high: int) -> int:
    if names and text.lower() in names[0]:
        return names[0].index(text.lower()) + names[1]
    if not text.isdigit():
        raise ValueError(f"{name} field: {item!r} is not a number, range or step")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} field: {value} is outside {low}-{high}")
    return value
