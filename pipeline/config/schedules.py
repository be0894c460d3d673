"""Schedules as EventBridge Scheduler reads them, checked at `validate` with the fix spelled out:
a bad expression or time zone would otherwise fail at `schedule`, or never fire.

The grammar is the one of EventBridge Scheduler's "Schedule types" page
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html):

- `cron(minutes hours day-of-month month day-of-week year)`: six fields, not Unix's five;
  one of day-of-month and day-of-week is `?`; wildcards `, - * /` everywhere, `?` and `L` in the
  day fields, `W` in day-of-month, `#` in day-of-week; months JAN-DEC, days SUN-SAT (1 is Sunday).
- `rate(value unit)`: a positive whole value; unit minute, hour or day, singular for 1
  (`rate(1 day)`) and plural otherwise (`rate(5 minutes)`).
- `at(yyyy-mm-ddThh:mm:ss)`: one time, in the schedule's time zone.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime
from functools import lru_cache

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# name, lowest, highest, names for 1.., extra wildcards
FIELDS = (("minutes", 0, 59, None, ""), ("hours", 0, 23, None, ""), ("day-of-month", 1, 31, None, "?LW"),
          ("month", 1, 12, MONTHS, ""), ("day-of-week", 1, 7, DAYS, "?L#"), ("year", 1970, 2199, None, ""))
UNITS = ("minute", "hour", "day")


def _value(text: str, low: int, high: int, names: list[str] | None) -> int:
    if names and text.upper() in names:
        return names.index(text.upper()) + 1
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number" + (f" or one of {'-'.join([names[0], names[-1]])}" if names else ""))
    if not low <= int(text) <= high:
        raise ValueError(f"{text} is out of range {low}-{high}")
    return int(text)


def _special(item: str, extra: str, low: int, high: int, names: list[str] | None) -> bool:
    """The day fields' own forms: L, LW, 15W (day-of-month); L, 5L, 3#2 (day-of-week)."""
    if "W" in extra and item.endswith("W") and item != "W":
        if item != "LW":
            _value(item[:-1], low, high, names)
        return True
    if "L" in extra and item.endswith("L"):
        if item != "L":
            _value(item[:-1], low, high, names)
        return True
    if "#" in extra and "#" in item:
        day, _, nth = item.partition("#")
        _value(day, low, high, names)
        if nth not in {"1", "2", "3", "4", "5"}:
            raise ValueError(f"{item!r}: the week after # is 1 to 5")
        return True
    return False


def _field_problem(text: str, name: str, low: int, high: int, names: list[str] | None, extra: str) -> str | None:
    if text == "?":
        return None if "?" in extra else f"{name} field: ? is only for day-of-month or day-of-week"
    try:
        for item in text.split(","):
            if _special(item, extra, low, high, names):
                continue
            base, slash, step = item.partition("/")
            if slash and not (step.isdigit() and int(step) >= 1):
                raise ValueError(f"{item!r}: the increment after / is a whole number from 1")
            if base == "*":
                continue
            for part in base.split("-", 1):
                _value(part, low, high, names)
    except ValueError as err:
        return f"{name} field: {err}"
    return None


def _unix_suggestion(fields: list[str]) -> str:
    """Unix `m h dom mon dow` as EventBridge's six fields: `?` in the day field left open, days of
    the week counted from 1 (Sunday) instead of 0, and every year."""
    minute, hour, dom, month, dow = fields
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom = "?"
        if "/" not in dow:
            dow = re.sub(r"\d+", lambda m: str(int(m.group()) % 7 + 1), dow)
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


def cron_problem(body: str) -> str | None:
    fields = body.split()
    if len(fields) == 5:
        minute, hour, dom, month, dow = fields
        if dom != "*" and dow != "*":
            return (f"cron({body}) has Unix's 5 fields; EventBridge Scheduler has 6 (minutes hours day-of-month "
                    "month day-of-week year) and cannot run on both a day of the month and a day of the week: "
                    f"write two schedules, cron({minute} {hour} {dom} {month} ? *) and "
                    f"{_unix_suggestion([minute, hour, '*', month, dow])}")
        return (f"cron({body}) has Unix's 5 fields; EventBridge Scheduler has 6 (minutes hours day-of-month month "
                f"day-of-week year), with ? in one day field: write {_unix_suggestion(fields)}")
    if len(fields) != 6:
        return (f"cron({body}) has {len(fields)} fields; EventBridge Scheduler has 6: minutes hours day-of-month "
                "month day-of-week year (no seconds), e.g. cron(0 3 * * ? *)")
    problems = [p for text, spec in zip(fields, FIELDS) if (p := _field_problem(text, *spec))]
    if problems:
        return f"cron({body}): " + "; ".join(problems)
    if (fields[2] == "?") == (fields[4] == "?"):
        fixed = fields[:4] + ["?"] + fields[5:] if fields[2] != "?" else fields[:2] + ["*"] + fields[3:]
        return (f"cron({body}): exactly one of day-of-month and day-of-week must be ? (EventBridge cannot "
                f"combine them): write cron({' '.join(fixed)})")
    return None


def rate_problem(body: str) -> str | None:
    match = re.fullmatch(r"(\d+) ([a-z]+)", body)
    if not match:
        return f"rate({body}): write rate(<whole number> <unit>), e.g. rate(1 day) or rate(30 minutes)"
    value, unit = int(match.group(1)), match.group(2)
    singular = unit.removesuffix("s")
    if singular not in UNITS:
        example = f"rate({value} day{'s' if value != 1 else ''})"
        return f"rate({body}): the unit is minute, hour or day (plural above 1), e.g. {example}"
    if value < 1:
        return f"rate({body}): the value is a whole number from 1"
    right = singular if value == 1 else singular + "s"
    if unit != right:
        number = "a value of 1 takes a singular unit" if value == 1 else "a value above 1 takes a plural unit"
        return f"rate({body}): {number}: write rate({value} {right})"
    return None


def at_problem(body: str) -> str | None:
    try:
        datetime.strptime(body, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return f"at({body}): write at(yyyy-mm-ddThh:mm:ss), e.g. at(2030-01-31T03:00:00)"
    return None


def expression_problem(expression: str) -> str | None:
    """Why EventBridge Scheduler would refuse `expression`, with what to write; None when it is valid."""
    match = re.fullmatch(r"(cron|rate|at)\((.*)\)", expression)
    if not match:
        return (f"{expression!r} is not an EventBridge Scheduler expression: write cron(minutes hours "
                "day-of-month month day-of-week year), rate(value unit) or at(yyyy-mm-ddThh:mm:ss)")
    kind, body = match.groups()
    return {"cron": cron_problem, "rate": rate_problem, "at": at_problem}[kind](body)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def timezone_problem(name: str) -> str | None:
    """None when `name` is in the IANA time zone database; otherwise the closest names."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    close = difflib.get_close_matches(name, sorted(_zones()), n=1, cutoff=0.6)
    hint = f": did you mean {close[0]}?" if close else " (an IANA name such as UTC or Europe/Paris)"
    return f"{name!r} is not a time zone of the IANA database{hint}"
