"""Standard 5-field cron strings -> APScheduler CronTrigger.

APScheduler 3 numbers the day of week from Monday = 0, while cron (and every crontab a user
has written) numbers it from Sunday = 0 (7 is Sunday too). `CronTrigger.from_crontab("0 9 * * 1")`
therefore fires on Tuesdays. We expand the day-of-week field to day names, which both agree on.
"""

from __future__ import annotations

import re

_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_ORDER = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _day(token: str) -> int:
    token = token.strip().lower()
    if token[:3] in _NAMES and token.isalpha():
        return _NAMES.index(token[:3])
    if not token.isdigit() or not 0 <= int(token) <= 7:
        raise ValueError(f"day of week {token!r} is not 0-7 or a day name")
    return int(token) % 7


def day_of_week_names(field: str) -> str:
    """'1-5' -> 'mon,tue,wed,thu,fri'; '*/2' -> 'sun,tue,thu,sat'; '*' stays '*'."""
    if field.strip() in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        m = re.fullmatch(r"\s*(\*|[\w]+)(?:-([\w]+))?(?:/(\d+))?\s*", part)
        if not m:
            raise ValueError(f"day of week {part!r} is not valid")
        start_s, end_s, step_s = m.groups()
        step = int(step_s) if step_s else 1
        if step < 1:
            raise ValueError("day-of-week step must be at least 1")
        if start_s == "*":
            start, end = 0, 6
        else:
            start = _day(start_s)
            if end_s is None:
                end = start if step_s is None else 6  # 'a/s' means a, a+s, ... up to Saturday
            else:
                end = 7 if end_s.strip() == "7" else _day(end_s)  # '5-7' ends on Sunday
            if end < start:
                raise ValueError(f"day-of-week range {part.strip()!r} runs backwards")
        days.update(d % 7 for d in range(start, end + 1, step))
    return ",".join(name for name in _ORDER if _NAMES.index(name) in days)


def cron_trigger(expression: str, timezone):
    """A CronTrigger for a standard 5-field cron string, in `timezone`."""
    # lazy: APScheduler's cron trigger is ~45 ms; config.py imports this module, and the
    # idle run must not pay it
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, dow = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=day_of_week_names(dow), timezone=timezone)
