"""Issue 23, findings 1 and 8: what readers of core.interactions see is the last build a core gate validated.

A run rebuilds its window of event dates in ``core.interactions`` (the working build) and its core gate judges
that build; only a passed gate promotes it to ``core.validated_interactions``, which ``core.usable_interactions``
(every reader: training, segments, channel metrics, the dashboard) reads. Until then, and when the gate fails,
readers keep the previous validated build: no hole while a run is between its build and its gate, and a re-run
that fails its gate hides nothing.
"""

from __future__ import annotations

from datetime import date

import pytest
from omnifuse import warehouse
from psycopg2 import sql

DAY1, DAY2, DAY3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)


def _query(url, text, params=None):
    with warehouse.transaction(url) as cur:
        cur.execute(text, params)
        return cur.fetchall()


def _usable(url: str) -> tuple[list[date], list[tuple]]:
    """Usable dates and, per usable date, the count and a digest of its usable rows (what every reader sees)."""
    dates = [d for (d,) in _query(url, "select event_date from core.usable_dates order by 1")]
    rows = _query(url, "select event_date, count(*), md5(string_agg(channel || event_key || coalesce(customer_id, '')"
                       " || revenue::text, ',' order by channel, event_key)) "
                       "from core.usable_interactions group by 1 order by 1")
    return dates, rows


def _load_and_build(day: date, world, url: str) -> None:
    """The ingest DAG's tasks for ``day`` up to ``build_interactions``, not its core gate."""
    from omnifuse.daily import LOAD_ORDER
    from omnifuse.identity import resolve_identities
    from omnifuse.ingest import ingest_source
    from omnifuse.interactions import build_interactions
    from omnifuse.quality import run_gate

    for name in LOAD_ORDER:
        ingest_source(name, day, landing_dir=world, url=url)
    run_gate("staging", day, url=url, run_id="overlap")
    resolve_identities(day, url=url)
    build_interactions(day, url=url)


def test_a_run_between_its_build_and_its_gate_hides_no_validated_history(tiny_world, clean_warehouse):
    """Finding 1: days 1-2 run, day 3 runs up to build_interactions. Readers still see days 1 and 2 exactly as
    validated (no date dropped, no row changed); once day 3's core gate passes they see the new build."""
    from omnifuse.daily import run_day
    from omnifuse.quality import run_gate

    url = clean_warehouse
    run_day(DAY1, tiny_world, url)
    run_day(DAY2, tiny_world, url)
    before = _usable(url)
    assert before[0] == [DAY1, DAY2]

    _load_and_build(DAY3, tiny_world, url)
    # the working build moved on (day 3's run now owns days 1..4), the readers did not
    assert _query(url, "select count(*) from core.interaction_builds where business_date = %s", (DAY3,))[0][0] >= 3
    assert _usable(url) == before

    run_gate("core", DAY3, url=url, run_id="overlap")
    dates, rows = _usable(url)
    assert dates == [DAY1, DAY2, DAY3]
    # day 3's late events re-built days 1 and 2: the promoted build is exactly the working build of those dates
    for day in (DAY1, DAY2, DAY3):
        assert _query(url, "select count(*) from core.usable_interactions where event_date = %s", (day,)) == \
            _query(url, "select count(*) from core.interactions where event_date = %s", (day,))


def test_a_rerun_that_fails_its_core_gate_keeps_the_last_validated_build(tiny_world, clean_warehouse):
    """Finding 1: re-running day 2 whose core gate fails (events planted outside their event date after the build)
    leaves every date usable with the rows of the last validated build; the verdict of day 2 says failed."""
    from omnifuse.daily import run_day
    from omnifuse.quality import QualityGateError, run_gate

    url = clean_warehouse
    run_day(DAY1, tiny_world, url)
    run_day(DAY2, tiny_world, url)
    before = _usable(url)

    _load_and_build(DAY2, tiny_world, url)
    with warehouse.transaction(url) as cur:  # a defect the core gate blocks (fresh_events: error)
        cur.execute(sql.SQL("update {} set event_ts = event_ts - interval '3 days' where _line_no < 20").format(
            sql.Identifier("core", warehouse.partition_name("interactions", DAY2))))
    with pytest.raises(QualityGateError):
        run_gate("core", DAY2, url=url, run_id="rerun")
    assert _query(url, "select passed from ops.quality_status where gate = 'core' and business_date = %s",
                  (DAY2,)) == [(False,)]
    assert _usable(url) == before


def test_a_warehouse_in_another_time_zone_blocks_no_date(tiny_world, clean_warehouse):
    """Finding 8: with the database's time zone America/New_York, every session (Great Expectations' too) works
    in UTC: the gates pass and the days are usable."""
    from omnifuse.daily import run_day

    url = clean_warehouse
    with warehouse.transaction(url) as cur:
        cur.execute("select current_database()")
        db = cur.fetchone()[0]
        cur.execute(sql.SQL("alter database {} set timezone = 'America/New_York'").format(sql.Identifier(db)))
    try:
        run_day(DAY1, tiny_world, url)
        run_day(DAY2, tiny_world, url)
        assert _query(url, "select gate, bool_and(passed) from ops.quality_status group by 1 order by 1") == \
            [("core", True), ("staging", True)]
        assert [d for (d,) in _query(url, "select event_date from core.usable_dates order by 1")] == [DAY1, DAY2]
    finally:
        with warehouse.transaction(url) as cur:
            cur.execute(sql.SQL("alter database {} reset timezone").format(sql.Identifier(db)))
