from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from publisher.scanner import scan, schedule_fired
from publisher.state import State

MON_0900 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)  # a Monday


def open_state(site):
    return State(site.config().database_url)


def test_first_scan_is_the_baseline(site):
    site.post("old.md", "title: Old\npubDate: 2024-01-01\nfeatured: true")
    config, state = site.config(), open_state(site)
    first = scan(config, state, MON_0900)
    assert first.baseline and [p.title for p in first.new] == ["Old"]
    assert first.unannounced == [] and first.newly_featured == []
    site.post("new.md", "title: New\npubDate: 2025-01-06")
    second = scan(config, state, MON_0900 + timedelta(hours=1))
    assert not second.baseline
    assert [p.title for p in second.new] == ["New"]
    assert [p.title for p in second.unannounced] == ["New"]
    # Seeing it again changes nothing: still owed, not new.
    third = scan(config, state, MON_0900 + timedelta(hours=2))
    assert third.new == [] and [p.title for p in third.unannounced] == ["New"]


def test_future_post_becomes_new_after_its_date(site):
    site.post("future.md", "title: Future\npubDate: 2025-01-08T10:00:00Z")
    config, state = site.config(), open_state(site)
    assert scan(config, state, MON_0900).posts == []
    later = scan(config, state, datetime(2025, 1, 8, 10, 1, tzinfo=timezone.utc))
    assert [p.title for p in later.unannounced] == ["Future"]


def test_featured_alerts_only_when_enabled(site):
    site.write_config()
    config = site.config()
    state = open_state(site)
    scan(config, state, MON_0900)
    site.post("f.md", "title: F\npubDate: 2025-01-06\nfeatured: true")
    result = scan(config, state, MON_0900 + timedelta(hours=1))
    assert [p.title for p in result.newly_featured] == ["F"]
    assert result.alerts_due == []


def test_featured_alert_for_new_and_later_featured_posts(site):
    site.write_config(newsletter={"featured_alert": True})
    config, state = site.config(), open_state(site)
    plain = site.post("p.md", "title: P\npubDate: 2024-12-01")
    scan(config, state, MON_0900)  # baseline: no alerts for the back catalogue
    site.post("f.md", "title: F\npubDate: 2025-01-06\nfeatured: true")
    result = scan(config, state, MON_0900 + timedelta(hours=1))
    assert [p.title for p in result.alerts_due] == ["F"]
    plain.write_text(plain.read_text().replace("title: P", "title: P\nfeatured: true"))
    result = scan(config, state, MON_0900 + timedelta(hours=2))
    assert sorted(p.title for p in result.alerts_due) == ["F", "P"]
    assert [p.title for p in result.newly_featured] == ["P"]


@pytest.mark.parametrize("since, now, fired", [
    (MON_0900 - timedelta(minutes=1), MON_0900, True),  # fired exactly now
    (MON_0900 - timedelta(minutes=1), MON_0900 - timedelta(seconds=1), False),
    (MON_0900, MON_0900 + timedelta(days=6), False),  # the firing at `since` does not count twice
    (MON_0900 + timedelta(microseconds=500), MON_0900 + timedelta(days=7), True),
    (MON_0900 - timedelta(days=30), MON_0900 + timedelta(hours=1), True),  # missed many: one yes
])
def test_schedule_fired(site, since, now, fired):
    assert schedule_fired(site.config(), since, now) is fired


def test_schedule_uses_newsletter_timezone(site):
    site.write_config(newsletter={"timezone": "Asia/Tokyo"})
    config = site.config()
    # 09:00 in Tokyo on Monday is 00:00 UTC.
    since = datetime(2025, 1, 5, 23, 0, tzinfo=timezone.utc)
    assert schedule_fired(config, since, datetime(2025, 1, 6, 0, 0, 1, tzinfo=timezone.utc))
    assert not schedule_fired(config, since, datetime(2025, 1, 5, 23, 59, tzinfo=timezone.utc))
