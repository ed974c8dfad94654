"""Which business date an Airflow run owns (pure: no Airflow import)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime


def business_date_for(conf: Mapping[str, object] | None, data_interval_start: datetime | None,
                      logical_date: datetime | None) -> date:
    """``conf["business_date"]`` when a run is triggered by hand (backfill of any date), else the start of
    the run's data interval (the day that just ended), else its logical date."""
    if conf and conf.get("business_date"):
        try:
            return date.fromisoformat(str(conf["business_date"]))
        except ValueError as exc:
            raise ValueError(
                f"run conf business_date={conf['business_date']!r} is not a date; trigger with "
                '{"business_date": "YYYY-MM-DD"}'
            ) from exc
    moment = data_interval_start or logical_date
    if moment is None:
        raise ValueError("the run has neither a data interval nor a logical date; pass conf business_date")
    return moment.date()


def business_date_for_asset_run(conf: Mapping[str, object] | None,
                                event_extras: Sequence[Mapping[str, object]]) -> date:
    """The date an asset-scheduled run (retrain, publish) processes.

    ``conf["business_date"]`` when triggered by hand; else the latest ``business_date`` among the triggering
    Asset events (the scheduler may merge several events into one run; everything they announced is in the
    warehouse, so the latest date covers them).
    """
    if conf and conf.get("business_date"):
        return business_date_for(conf, None, None)
    dates = [date.fromisoformat(str(e["business_date"])) for e in event_extras if e and e.get("business_date")]
    if not dates:
        raise ValueError("this run was neither triggered by an Asset event carrying a business_date nor given "
                         '{"business_date": "YYYY-MM-DD"} in its conf; trigger it with that conf.')
    return max(dates)
