"""Dates loaded out of order give the same tables as dates loaded day by day (scenario 23).

The days go through ``omnifuse.daily.run_day`` — the same functions, gates included, that the ingest DAG's
tasks call — so that two full loads of a week fit in the suite's budget; ``test_backfill.py`` runs the real
DAG itself.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from omnifuse import warehouse
from omnifuse.daily import run_day
from omnifuse.digest import load_digests

START = date(2026, 11, 2)
DAYS = [START + timedelta(days=i) for i in range(6)]
SHUFFLED = [DAYS[i] for i in (4, 1, 5, 0, 3, 2)]
@pytest.fixture(scope="module")
def week(tmp_path_factory):
    from omnifuse.generate import WorldConfig, generate

    out = tmp_path_factory.mktemp("week")
    # a messy week: late events, clock skew, re-delivered files, shared tablets, duplicate CRM records
    generate(WorldConfig(customers=500, products=120, days=len(DAYS), start=START, seed=23), out)
    return out


def _digests(url: str) -> dict[str, tuple[int, str]]:
    with warehouse.transaction(url) as cur:
        return load_digests(cur)


def _reset(url: str) -> None:
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(url)


def test_dates_loaded_out_of_order_equal_dates_loaded_in_order(week, warehouse_url):
    _reset(warehouse_url)
    for day in DAYS:
        run_day(day, week, warehouse_url)
    in_order = _digests(warehouse_url)
    assert in_order["core.interactions"][0] > 1000 and in_order["core.usable_dates"][0] == len(DAYS)
    _reset(warehouse_url)
    for day in SHUFFLED:
        run_day(day, week, warehouse_url)
    shuffled = _digests(warehouse_url)
    assert {t: d for t, d in shuffled.items() if d != in_order[t]} == {}
    _reset(warehouse_url)


def test_two_runs_of_one_date_at_once_are_serialized(week, warehouse_url):
    """Scenario 10: the whole day's work started twice at the same moment, in two processes, gives the tables
    one run gives (every write holds its (source, date) or interactions lock for its transaction)."""
    import os
    import subprocess
    import sys

    _reset(warehouse_url)
    run_day(DAYS[0], week, warehouse_url)
    once = _digests(warehouse_url)
    _reset(warehouse_url)
    # no retry: two runs of a date at once must neither deadlock nor fail (issue 23, finding 11)
    code = ("import sys\n"
            "from datetime import date\nfrom pathlib import Path\nfrom omnifuse.daily import run_day\n"
            "run_day(date.fromisoformat(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])\n")
    env = {**os.environ, "OMNIFUSE_WAREHOUSE_URL": warehouse_url}
    procs = [subprocess.Popen([sys.executable, "-c", code, DAYS[0].isoformat(), str(week), warehouse_url], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    twice = _digests(warehouse_url)
    # the gates' own results are per run (ops.dq_results); everything the load owns is as one run left it
    assert {t: d for t, d in twice.items() if d != once[t]} == {}
    _reset(warehouse_url)
