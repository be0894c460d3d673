"""Schedules as EventBridge Scheduler reads them: expressions and time zones, with the fix."""

from __future__ import annotations

import pytest

from pipeline.config import validate_config
from tests.pipeline.config.conftest import problems_of


def with_schedule(example: dict, **fields) -> dict:
    example["schedules"] = [{"name": "nightly", "expression": "cron(0 3 * * ? *)", **fields}]
    return example


class TestValidSchedules:
    @pytest.mark.parametrize("expression", [
        "cron(0 3 * * ? *)", "cron(0/15 8-17 ? * MON-FRI *)", "cron(15 10 ? * 6L 2030-2035)",
        "cron(0 12 L * ? *)", "cron(0 9 15W * ? *)", "cron(0 9 ? * 3#2 *)", "cron(*/5 * * JAN,JUL ? *)",
        "rate(1 day)", "rate(1 minute)", "rate(5 minutes)", "rate(12 hours)", "at(2030-01-31T03:00:00)",
    ])
    def test_expressions(self, example, expression):
        assert validate_config(with_schedule(example, expression=expression)).schedules[0].expression == expression

    @pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"])
    def test_time_zones(self, example, zone):
        assert validate_config(with_schedule(example, timezone=zone)).schedules[0].timezone == zone


class TestInvalidSchedules:
    @pytest.mark.parametrize("expression, problem", [
        ("cron(0 3 * * *)", "cron(0 3 * * *) has Unix's 5 fields; EventBridge Scheduler has 6 (minutes hours "
                            "day-of-month month day-of-week year), with ? in one day field: write cron(0 3 * * ? *)"),
        ("cron(30 6 * * 1-5)", "write cron(30 6 ? * 2-6 *)"),  # Unix counts days from 0, EventBridge from 1 (Sunday)
        ("cron(0 3 1 * 1)", "write two schedules, cron(0 3 1 * ? *) and cron(0 3 ? * 2 *)"),
        ("cron(0 25 * * ? *)", "cron(0 25 * * ? *): hours field: 25 is out of range 0-23"),
        ("cron(60 3 * * ? *)", "minutes field: 60 is out of range 0-59"),
        ("cron(0 3 32 * ? *)", "day-of-month field: 32 is out of range 1-31"),
        ("cron(0 3 ? 13 MON *)", "month field: 13 is out of range 1-12"),
        ("cron(0 3 ? * 0 *)", "day-of-week field: 0 is out of range 1-7"),
        ("cron(0 3 * * ? 1969)", "year field: 1969 is out of range 1970-2199"),
        ("cron(0 3 * * * *)", "exactly one of day-of-month and day-of-week must be ? (EventBridge cannot combine "
                              "them): write cron(0 3 * * ? *)"),
        ("cron(0 3 ? * ? *)", "write cron(0 3 * * ? *)"),
        ("cron(0 ? * * ? *)", "hours field: ? is only for day-of-month or day-of-week"),
        ("cron(0 0 3 * * ? *)", "has 7 fields; EventBridge Scheduler has 6"),
        ("cron(0 3 ? * 3#6 *)", "the week after # is 1 to 5"),
        ("rate(1 days)", "rate(1 days): a value of 1 takes a singular unit: write rate(1 day)"),
        ("rate(5 minute)", "rate(5 minute): a value above 1 takes a plural unit: write rate(5 minutes)"),
        ("rate(0 hours)", "the value is a whole number from 1"),
        ("rate(2 weeks)", "the unit is minute, hour or day (plural above 1), e.g. rate(2 days)"),
        ("at(2030-02-30T03:00:00)", "write at(yyyy-mm-ddThh:mm:ss)"),
        ("daily", "'daily' is not an EventBridge Scheduler expression"),
    ])
    def test_expression_refused_with_the_fix(self, example, expression, problem):
        (line,) = problems_of(with_schedule(example, expression=expression))
        assert line.startswith("schedules[0].expression: ") and problem in line

    def test_misspelt_time_zone_gets_the_right_one(self, example):
        assert problems_of(with_schedule(example, timezone="Europe/Pariss")) == [
            "schedules[0].timezone: 'Europe/Pariss' is not a time zone of the IANA database: did you mean Europe/Paris?"]

    def test_path_as_time_zone(self, example):
        (line,) = problems_of(with_schedule(example, timezone="../../etc/passwd"))
        assert line.startswith("schedules[0].timezone: '../../etc/passwd' is not a time zone")

    def test_every_schedule_problem_at_once(self, example):
        example["schedules"] = [{"name": "a", "expression": "cron(0 3 * * *)", "timezone": "Europe/Pariss"},
                                {"name": "b", "expression": "rate(1 days)"}]
        assert [p.split(":")[0] for p in problems_of(example)] == [
            "schedules[0].expression", "schedules[0].timezone", "schedules[1].expression"]
