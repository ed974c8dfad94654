"""Is a business date one that may be published? Checked against the data and the champion, before anything is built.

A publish for a date the warehouse has no data for (a typo in a run's conf, a month ahead) used to pass every
check, go live, and from then on the monotonic guard turned every real publish into history only. A date may
be published when

- the data reaches it: it is no later than the newest usable event date (``core.usable_dates``, the dates that
  passed their quality gates), and
- a champion was trained or judged through it: ``ml.model_registry`` holds a version (the champion, or a
  challenger a retrain of that date compared with the champion it kept) whose business date is that date or a
  later one. A retrain of the date that kept yesterday's champion counts: that champion is the date's champion.

Anything else raises :class:`BusinessDateError` naming the date, what the warehouse holds and what to do.
"""

from __future__ import annotations

from datetime import date

import psycopg2.extensions

from omnifuse import warehouse


class BusinessDateError(RuntimeError):
    """A business date the data or the champion does not reach: nothing was published."""


def newest_usable_date(cur: psycopg2.extensions.cursor) -> date | None:
    """The newest event date that passed its quality gates (``core.usable_dates``), or None."""
    cur.execute("select max(event_date) from core.usable_dates")
    return cur.fetchone()[0]


def check_publishable(cur: psycopg2.extensions.cursor, business_date: date) -> None:
    """Raise :class:`BusinessDateError` unless ``business_date`` is within the usable data and a retrain of that
    date (or a later one) chose or kept the champion. Reads inside the caller's transaction (``cur``)."""
    newest_data = newest_usable_date(cur)
    if newest_data is None or business_date > newest_data:
        raise BusinessDateError(
            f"publish of business date {business_date} refused, nothing was published: the usable data ends at "
            f"{newest_data or 'no date at all'} (core.usable_dates: event dates that passed their quality gates). "
            "Check the run's conf {\"business_date\": ...} for a typo; to publish a new date, ingest it "
            "(omnifuse_ingest) and retrain it (omnifuse_retrain) first.")
    cur.execute("select max(business_date) from ml.model_registry where status in ('champion', 'rejected', "
                "'retired')")
    newest_judged = cur.fetchone()[0]
    if newest_judged is None or business_date > newest_judged:
        raise BusinessDateError(
            f"publish of business date {business_date} refused, nothing was published: no champion was trained "
            f"or judged through it (the newest retrain in ml.model_registry is of "
            f"{newest_judged or 'no date at all'}). Run omnifuse_retrain for {business_date} first; it publishes "
            "the date's champion when it finishes.")


def check_publishable_date(business_date: date, url: str | None = None) -> None:
    """:func:`check_publishable` in a transaction of its own (a run's first task, before any scoring)."""
    with warehouse.transaction(url) as cur:
        check_publishable(cur, business_date)
