from __future__ import annotations

from datetime import datetime, timezone

import pytest

from publisher.cron import cron_trigger, day_of_week_names


@pytest.mark.parametrize("field, names", [
    ("*", "*"),
    ("1", "mon"),
    ("0", "sun"),
    ("7", "sun"),
    ("1-5", "mon,tue,wed,thu,fri"),
    ("5-7", "fri,sat,sun"),
    ("0-2", "mon,tue,sun"),
    ("*/2", "tue,thu,sat,sun"),
    ("1-5/2", "mon,wed,fri"),
    ("mon,wed", "mon,wed"),
    ("SUN", "sun"),
])
def test_day_of_week_uses_cron_numbering(field, names):
    assert day_of_week_names(field) == names


@pytest.mark.parametrize("bad", ["8", "5-2", "x", "1/0"])
def test_bad_day_of_week(bad):
    with pytest.raises(ValueError):
        day_of_week_names(bad)


def test_monday_means_monday():
    trigger = cron_trigger("0 9 * * 1", "UTC")
    sunday = datetime(2025, 1, 5, 12, tzinfo=timezone.utc)
    assert trigger.get_next_fire_time(None, sunday) == datetime(2025, 1, 6, 9, tzinfo=timezone.utc)
