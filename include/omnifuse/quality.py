"""Data-quality gates: Great Expectations suites, run inside Postgres, with a severity per expectation.

Suites are JSON files under ``include/gx/suites/`` (reviewed like code). Each names a table, how to batch it
(``batch``, below), says in ``description`` which date it filters on (shown as the suite's notes in Data Docs) and
lists its expectations, each with a ``severity``: ``error`` fails the gate and blocks everything downstream for
the date; ``warn`` is recorded and shown, and the run goes on. Besides GX's own expectation types, a suite may use
these of ours, which this module turns into GX expectations whose figures come from the warehouse:

- ``known_products``: every product id of the batch is in ``core.products`` (``where``: only rows matching
  this SQL condition, e.g. till lines that are products);
- ``known_currencies``: every currency of the batch has a rate in ``core.fx_rates`` (EUR always);
- ``quarantine_share``: at most ``max_share`` of the channel-day's lines went to quarantine (ops.load_audit);
- ``unexpected_rows``: no row matches the suite's ``where`` SQL condition (``description`` says the rule);
- ``trailing_outliers`` (warn): no ``|column|`` above ``factor`` × the ``quantile`` of the table's own
  trailing ``days`` of arrival dates (``_arrival_date``; no history, no verdict);
- ``fresh_events``: events belong to the business date: a staging batch's event times within the late window
  before its arrival date, a ``core.interactions`` partition's within its event date (1 h of clock skew allowed);
- ``volume_band``: the batch's row count within [low×, high×] (default 0.4, 2.5) the trailing 7-day median
  (needs 2 days of history; never tighter than 5 Poisson standard deviations); a channel silent on most of its
  trailing days (a shop without it, delivering valid empty folders) may stay silent;
- ``channel_mix``: no channel's share of the day moves more than ``max_share_shift`` from the trailing week.

Bounds are never constants of a suite: a kwarg ``{"rule": "max_quantity"}`` is filled from
:mod:`omnifuse.rules`, the same values the staging SQL quarantines by, so a gate never blocks a date for a value
staging accepts.

Which date each gate filters on (the three dates: README, *Dates*):

- the **staging gate** validates, for each staging table, the partition of **arrival date** = the business date
  (``batch: partition`` on ``_arrival_date``): the lines that landed in that day's folders, whatever their event
  time. Its verdict (``ops.quality_status``, gate ``staging``) admits that arrival batch into ``core.interactions``;
- the **core gate** validates ``core.interactions`` by **event date**: the partition of event date = the business
  date (``batch: partition``) and every event-date partition the run rebuilt (``batch: rebuilt``, from the
  business date back ``max(OMNIFUSE_REATTRIBUTION_DAYS, OMNIFUSE_LATE_WINDOW_DAYS)`` days to the day after it), so
  a re-attributed day is validated again before it counts as usable (``core.usable_dates``); and the whole
  identity map, product and customer tables (``batch: table``).

GX runs through its generic SQL data source (its Postgres source rejects the embedded server's unix-socket
URL), so every metric is a query in the warehouse. A gate runs in two passes: the first computes every count,
share and observed value but asks for no sample of offending values (GX would otherwise run one more query per
row-level expectation, a full pass over the batch whenever nothing is wrong); the second validates again, alone,
only the row-level expectations that failed, with a sample of five values, and puts that result in place of the
first — so ``ops.dq_results`` and Data Docs hold what a single detailed pass would. Our custom checks count their
offending rows without fetching them (:func:`_counted_rows`). Every result is written to ``ops.dq_results``; Data Docs
(HTML) are built per run under ``<state dir>/data_docs/<gate>/<business date>/``. GX's Airflow provider does
not fail tasks (and pins an incompatible structlog), so the gate raises :class:`QualityGateError` itself.
"""

from __future__ import annotations

import functools
import json
import logging
import statistics
import time
import warnings
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from omnifuse import warehouse
from omnifuse.config import Settings, load_settings, load_timeouts
from omnifuse.rules import resolve

log = logging.getLogger(__name__)

#: The gates of ``omnifuse_ingest`` and the suites each runs.
GATES: dict[str, tuple[str, ...]] = {
    "staging": ("staging_web_events", "staging_mobile_events", "staging_social_interactions",
                "staging_store_sales"),
    "core": ("core_interactions", "core_interactions_rebuilt", "core_identity_map", "core_products",
             "core_customers"),
}
SEVERITY = {"error": "critical", "warn": "warning"}
#: result formats of a gate's two passes (see :func:`run_gate`): counts for every expectation, then a sample of
#: offending values for the row-level ones that failed
FIRST_PASS = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
DETAIL_PASS = {"result_format": "SUMMARY", "partial_unexpected_count": 5}


#: the batch in a custom check's query, under a name the query can qualify columns by: GX substitutes ``{batch}``
#: with "(select ...) as subselect" for a table, but with a bare name for a query batch kept in a temporary table
BATCH = "(select * from {{batch}}) as subselect"


class QualityGateError(RuntimeError):
    """An ``error``-severity expectation failed: nothing downstream may read this business date."""


@dataclass(frozen=True)
class Check:
    """One expectation of a suite, ready for GX."""

    table: str
    name: str
    severity: str
    expectation: Any  # a great_expectations Expectation


@functools.cache
def _counted_rows() -> type:
    """GX's ``UnexpectedRowsExpectation`` that only counts the offending rows.

    GX's own runs its query twice — once fetching the rows (all of them reach the client, of which it keeps 200),
    once counting them — though at our result format it reports only the count: a second full pass over the batch
    for every custom check. This one asks for the count alone; its result (``observed_value``: the count) and its
    Data Docs rendering are GX's. Defined on first use, so importing this module does not import GX.
    """
    import great_expectations.expectations as gxe

    class ExpectNoUnexpectedRows(gxe.UnexpectedRowsExpectation):
        """No row matches ``unexpected_rows_query`` (counted in the warehouse, rows not fetched)."""

        metric_dependencies = ("unexpected_rows_query.row_count",)

        def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                      execution_engine: Any = None) -> dict:
            count = metrics["unexpected_rows_query.row_count"]
            return {"success": count == 0, "result": {"observed_value": count}}

    return ExpectNoUnexpectedRows


def suites_dir(settings: Settings) -> Path:
    return settings.home / "include" / "gx" / "suites"


def load_suite(name: str, settings: Settings | None = None) -> dict:
    path = suites_dir(settings or load_settings()) / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"quality suite {path} is missing; every suite named in quality.GATES needs one") \
            from None


def batch_table(suite: dict, business_date: date) -> tuple[str, str]:
    """(schema, table) that GX validates: the business date's partition (a staging table's arrival date, or
    ``core.interactions``' event date), or the whole table (``rebuilt``: the parent table, which
    :func:`batch_query` narrows to the rebuilt event dates)."""
    schema, table = suite["table"].split(".")
    if suite["batch"] == "partition":
        return schema, warehouse.partition_name(table, business_date)
    return schema, table


def rebuilt_dates(business_date: date, settings: Settings | None = None) -> tuple[date, date]:
    """First and last event date of ``core.interactions`` that the run of ``business_date`` rebuilt."""
    from omnifuse.interactions import rebuild_window

    settings = settings or load_settings()
    window = rebuild_window(business_date, settings.reattribution_days, settings.late_window_days)
    return window[0], window[-1]


def batch_query(cur, suite: dict, business_date: date, settings: Settings) -> str | None:
    """The SQL a ``rebuilt`` batch validates (None for the other batch kinds)."""
    if suite["batch"] != "rebuilt":
        return None
    first, last = rebuilt_dates(business_date, settings)
    schema, table = suite["table"].split(".")
    query = sql.SQL("select * from {} where event_date between {} and {}").format(
        sql.Identifier(schema, table), sql.Literal(first.isoformat()), sql.Literal(last.isoformat()))
    return query.as_string(cur.connection)


def _volume_history(cur, kind: str, business_date: date) -> list[int]:
    """Row counts of the 7 days before the business date, for the volume band."""
    if kind == "core_interactions":
        cur.execute("select rows_built from core.interaction_builds where event_date between %s and %s "
                    "and rows_built > 0", (business_date - timedelta(days=7), business_date - timedelta(days=1)))
    else:
        cur.execute("select rows_staged from ops.load_audit where channel = %s and business_date between %s and %s",
                    (kind.removeprefix("staging_"), business_date - timedelta(days=7),
                     business_date - timedelta(days=1)))
    return [r[0] for r in cur.fetchall()]


def build_checks(
    cur: psycopg2.extensions.cursor, suite: dict, business_date: date, settings: Settings
) -> list[Check]:
    """Turn a suite's JSON into GX expectations, filling our four expectation types from the warehouse (bounds
    named by a rule from ``settings``, the late window ``settings.late_window_days``)."""
    import great_expectations.expectations as gxe

    conn = cur.connection
    checks = []
    for spec in suite["expectations"]:
        kind, severity = spec["type"], spec["severity"]
        kwargs = resolve(dict(spec.get("kwargs", {})), settings)
        if severity not in SEVERITY:
            raise ValueError(f"{suite['table']}: severity must be error or warn, not {severity!r}")
        column = kwargs.get("column")
        if kind == "known_products":
            where = (sql.SQL("({}) and ").format(sql.SQL(kwargs["where"])) if kwargs.get("where")
                     else sql.SQL(""))
            query = sql.SQL("select * from " + BATCH + " where {}not exists "
                            "(select 1 from core.products as p where p.product_id = subselect.{})").format(
                where, sql.Identifier(column))
            exp = _counted_rows()(unexpected_rows_query=query.as_string(conn),
                                                description=f"every {column} is a product in core.products"
                                                + (f" where {kwargs['where']}" if kwargs.get("where") else ""))
            name = f"known_products({column})"
        elif kind == "known_currencies":
            query = sql.SQL("select * from " + BATCH + " where subselect.{col} <> 'EUR' and not exists "
                            "(select 1 from core.fx_rates as r where r.currency = subselect.{col} "
                            "and r.rate_date <= {day})").format(
                col=sql.Identifier(column), day=sql.Literal(business_date.isoformat()))
            exp = _counted_rows()(unexpected_rows_query=query.as_string(conn),
                                                description=f"every {column} has a rate in core.fx_rates")
            name = f"known_currencies({column})"
        elif kind == "quarantine_share":
            channel = suite["volume"].removeprefix("staging_")
            share = float(kwargs["max_share"])
            query = sql.SQL("""
                select a.channel, a.lines_read, a.rows_quarantined, a.quarantine_by_reason
                from ops.load_audit as a
                where a.channel = {channel} and a.business_date = {day} and a.lines_read > 0
                    and a.rows_quarantined > {share} * a.lines_read
                    and (select count(*) from {{batch}}) >= 0
            """).format(channel=sql.Literal(channel), day=sql.Literal(business_date.isoformat()),
                        share=sql.Literal(share))
            exp = _counted_rows()(
                unexpected_rows_query=query.as_string(conn),
                description=f"at most {share:.0%} of the {channel} lines quarantined (else the export is broken)")
            name = "quarantine_share"
        elif kind == "unexpected_rows":
            # the condition is SQL reviewed in the suite file, never user input
            query = sql.SQL("select * from {{batch}} where {}").format(sql.SQL(kwargs["where"]))
            exp = _counted_rows()(unexpected_rows_query=query.as_string(conn),
                                                description=kwargs.get("description", kwargs["where"]))
            name = f"unexpected_rows({kwargs.get('description', kwargs['where'])})"
        elif kind == "trailing_outliers":
            days = int(kwargs.get("days", 28))
            query = sql.SQL("""
                select * from """ + BATCH + """
                where abs(subselect.{col}) > {factor} * (
                    select percentile_cont({q}) within group (order by abs(h.{col}))
                    from {table} as h
                    where h._arrival_date between {start} and {end})
            """).format(col=sql.Identifier(column), factor=sql.Literal(float(kwargs.get("factor", 10))),
                        q=sql.Literal(float(kwargs.get("quantile", 0.99))),
                        table=sql.Identifier(*suite["table"].split(".")),
                        start=sql.Literal((business_date - timedelta(days=days)).isoformat()),
                        end=sql.Literal((business_date - timedelta(days=1)).isoformat()))
            exp = _counted_rows()(
                unexpected_rows_query=query.as_string(conn),
                description=f"|{column}| within {kwargs.get('factor', 10)}x the trailing {days}-day "
                f"p{round(100 * float(kwargs.get('quantile', 0.99)))}")
            name = f"trailing_outliers({column})"
        elif kind == "fresh_events":
            start = business_date - timedelta(days=settings.late_window_days)
            if suite["table"] == "core.interactions":  # a partition of one event date
                start = business_date
            # "local": the column is a local time without zone (a till's day is the store's local day)
            cast = sql.SQL("timestamp" if kwargs.get("local") else "timestamptz")
            query = sql.SQL("select * from {{batch}} where {col} < {start}::date::{cast} "
                            "or {col} >= {end}::date::{cast} + interval '1 hour'").format(
                col=sql.Identifier(column), start=sql.Literal(start.isoformat()), cast=cast,
                end=sql.Literal((business_date + timedelta(days=1)).isoformat()))
            exp = _counted_rows()(
                unexpected_rows_query=query.as_string(conn),
                description=f"{column} within {start} .. {business_date} (+1 h skew)")
            name = f"fresh_events({column})"
        elif kind == "volume_band":
            history = _volume_history(cur, suite["volume"], business_date)
            low_f, high_f = kwargs.get("low", 0.4), kwargs.get("high", 2.5)
            median = statistics.median(history) if history else None
            if median == 0:
                # a channel the shop does not have (valid empty deliveries): silence is its normal volume
                low, high = 0, 5 * (max(history) + 1)
                note = f"0..{high} rows: the channel was silent on most of the trailing {len(history)} days"
            elif median is not None and len(history) >= 2:
                # small days are noisy: never tighter than 5 Poisson standard deviations
                low = int(max(1, min(median * low_f, median - 5 * median**0.5)))
                high = int(max(median * high_f, median + 5 * median**0.5)) + 1
                note = f"{low_f}x..{high_f}x the trailing median {median:g} of {len(history)} days"
            else:
                low, high, note = 0, None, f"no band yet (only {len(history)} days of history)"
            exp = gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high, description=note)
            name = "volume_band"
        elif kind == "channel_mix":
            query = sql.SQL("""
                with today as (
                    select channel, count(*)::numeric / sum(count(*)) over () as share from {{batch}} group by channel
                ),
                week as (
                    select channel, count(*)::numeric / sum(count(*)) over () as share
                    from core.interactions where event_date between {start} and {end} group by channel
                )
                select coalesce(today.channel, week.channel) as channel, today.share as today_share,
                       week.share as week_share
                from today full join week on week.channel = today.channel
                where exists (select 1 from week)
                    and abs(coalesce(today.share, 0) - coalesce(week.share, 0)) > {shift}
            """).format(start=sql.Literal((business_date - timedelta(days=7)).isoformat()),
                        end=sql.Literal((business_date - timedelta(days=1)).isoformat()),
                        shift=sql.Literal(kwargs["max_share_shift"]))
            exp = _counted_rows()(
                unexpected_rows_query=query.as_string(conn),
                description=f"no channel's share moves more than {kwargs['max_share_shift']} from the trailing week")
            name = "channel_mix"
        else:
            cls_name = "".join(part.title() for part in kind.split("_"))
            exp = getattr(gxe, cls_name)(**kwargs)
            target = column or ",".join(kwargs.get("column_list", []))
            name = f"{kind}({target})" if target else kind
        exp.severity = SEVERITY[severity]
        checks.append(Check(table=suite["table"], name=name, severity=severity, expectation=exp))
    return checks


def _sqlalchemy_url(url: str) -> str:
    """The warehouse URL for GX's SQLAlchemy engine, its sessions set up like every other omnifuse session: UTC
    and the connect, statement and lock timeouts (:func:`omnifuse.warehouse.session_options`), whatever the
    server's or the database's defaults are."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg2://" + url[len(prefix):]
    timeouts = load_timeouts()
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = " ".join(filter(None, [query.get("options", ""), warehouse.session_options(timeouts)]))
    query.setdefault("connect_timeout", str(timeouts.connect_s))
    return parts._replace(query=urlencode(query)).geturl()


def _rows(result: dict) -> list:
    """A few offending rows or values from a GX result, for the log and ops.dq_results."""
    res = result.get("result") or {}
    sample = res.get("details", {}).get("unexpected_rows") or res.get("partial_unexpected_list") or []
    return [str(s) for s in sample[:5]]


def run_gate(gate: str, business_date: date, *, url: str | None = None, run_id: str = "manual",
             raise_on_error: bool = True, settings: Settings | None = None) -> dict:
    """Validate the gate's suites for the business date (the date the run owns: the staging gate reads its
    arrival-date partitions, the core gate the event dates it rebuilt), record ``ops.dq_results``, build Data Docs.

    The core gate judges the working build of ``core.interactions`` and, when it passes, promotes it to what
    readers see (:func:`omnifuse.interactions.promote_validated`) in the transaction that records its verdict. It
    holds the lock builds take from before it reads until then, so no build slips in between: the verdict belongs
    to the build it judged.

    Raises :class:`QualityGateError` (after recording) when an ``error`` expectation failed. Returns a summary.
    """
    settings = settings or load_settings()
    url = url or warehouse.warehouse_url(settings)
    with warehouse.transaction(url) as verdict_cur:
        if gate == "core":
            warehouse.lock(verdict_cur, "interactions")
        return _run_gate(gate, business_date, url, run_id, raise_on_error, settings, verdict_cur)


def _run_gate(gate: str, business_date: date, url: str, run_id: str, raise_on_error: bool, settings: Settings,
              verdict_cur: psycopg2.extensions.cursor) -> dict:
    """:func:`run_gate` inside the transaction of ``verdict_cur``, which records the verdict (and promotes)."""
    import great_expectations as gx

    started = time.perf_counter()
    docs_dir = settings.state_dir / "data_docs" / gate / business_date.isoformat()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # the generic SQL data source is deliberate (GX's Postgres one rejects the embedded server's socket URL):
    # GX's advice to switch would only clutter every gate's log
    warnings.filterwarnings("ignore", message="You are using a generic SQLDatasource")
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(site_name="omnifuse", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    source = context.data_sources.add_sql(name="warehouse", connection_string=_sqlalchemy_url(url))
    # a query batch (``rebuilt``): GX learns its columns by running the query itself, which downloads every row
    # of it (1 M rows for a day of events) to the client; in a temporary table it is materialised once, in Postgres
    query_source = context.data_sources.add_sql(name="warehouse_query", connection_string=_sqlalchemy_url(url),
                                                create_temp_table=True)
    checks_by_suite: dict[str, list[Check]] = {}
    batches: dict[str, Any] = {}
    definitions = []
    with warehouse.transaction(url) as cur:
        for name in GATES[gate]:
            suite_spec = load_suite(name, settings)
            schema, table = batch_table(suite_spec, business_date)
            cur.execute("select to_regclass(%s)", (f"{schema}.{table}",))
            if cur.fetchone()[0] is None:
                raise QualityGateError(
                    f"{gate} gate {business_date}: {schema}.{table} does not exist — the load for this date has "
                    "not run. Run omnifuse_ingest for the date first.")
            query = batch_query(cur, suite_spec, business_date, settings)
            asset: Any
            if query is not None:
                asset = query_source.add_query_asset(name=name, query=query)
            else:
                asset = source.add_table_asset(name=name, table_name=table, schema_name=schema)
            suite = context.suites.add(gx.ExpectationSuite(name=name, notes=suite_spec.get("description")))
            checks_by_suite[name] = [
                replace(check, expectation=suite.add_expectation(check.expectation))
                for check in build_checks(cur, suite_spec, business_date, settings)
            ]
            batches[name] = asset.add_batch_definition_whole_table("date")
            definitions.append(context.validation_definitions.add(gx.ValidationDefinition(
                name=name, data=batches[name], suite=suite)))
    # First pass: every count, share and observed value, but no sample of offending values — GX would fetch one
    # per row-level expectation with a query of its own (a full pass over the batch when nothing is wrong, which
    # is nearly always); with partial_unexpected_count 0 that query is "limit 0" and costs nothing.
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{gate}_gate", validation_definitions=definitions, actions=[], result_format=FIRST_PASS))
    result = checkpoint.run()
    _add_samples(context, result, checks_by_suite, batches)

    rows: list[dict[str, Any]] = []
    for vr in result.run_results.values():
        by_id = {er.expectation_config.id: er for er in vr.results if er.expectation_config is not None}
        for check in checks_by_suite[vr.suite_name]:
            er = by_id[check.expectation.id]
            res: dict[str, Any] = dict(er.to_json_dict())
            detail = res.get("result") or {}
            rows.append({
                "table_name": check.table, "expectation": check.name, "severity": check.severity,
                "success": bool(er.success), "observed_value": _observed(detail),
                "unexpected_count": detail.get("unexpected_count"),
                "unexpected_percent": detail.get("unexpected_percent"),
                "sample": json.dumps(_rows(res)),
                "error": _exception(res.get("exception_info") or {}),
            })
    docs_index = docs_dir / "index.html"
    failed = [r for r in rows if not r["success"]]
    if settings.data_docs == "always" or (failed and settings.data_docs == "on_failure"):
        # once per gate run: GX's UpdateDataDocsAction rebuilds the whole site after every suite
        context.build_data_docs(site_names=["omnifuse"])
    _record(verdict_cur, gate, run_id, business_date, rows, docs_index)
    errors = [r for r in failed if r["severity"] == "error"]
    if gate == "core" and not errors:
        from omnifuse.interactions import promote_validated

        promote_validated(verdict_cur, business_date, settings)
    verdict_cur.connection.commit()  # the verdict (and the promotion) stand even when the gate raises below
    summary = {"gate": gate, "business_date": business_date.isoformat(), "checks": len(rows),
               "failed_error": len(errors), "failed_warn": len(failed) - len(errors),
               "data_docs": docs_index.as_uri(), "seconds": round(time.perf_counter() - started, 3)}
    for r in failed:
        log.warning("%s %s [%s] %s: observed %s, %s unexpected; sample %s", gate, r["table_name"], r["severity"],
                    r["expectation"], r["observed_value"], r["unexpected_count"], r["sample"])
    log.info("%s gate %s: %s — Data Docs: %s", gate, business_date, summary, docs_index.as_uri())
    if errors and raise_on_error:
        lines = "\n".join(
            f"  - {r['table_name']}: {r['expectation']} failed (observed {r['observed_value']}, "
            f"{r['unexpected_count'] if r['unexpected_count'] is not None else '?'} unexpected"
            f"{'; ' + r['error'] if r['error'] else ''}); sample: {r['sample']}"
            for r in errors)
        raise QualityGateError(
            f"{gate} quality gate failed for {business_date}: {len(errors)} blocking expectation(s)\n{lines}\n"
            f"Nothing downstream will read {business_date}. Look at the rows above (and ops.dq_results, "
            f"Data Docs {docs_index.as_uri()}), fix the source or the load, then clear this task. "
            "If the expectation itself is wrong, change its suite in include/gx/suites/ in a reviewed commit.")
    return summary


def _add_samples(context: Any, result: Any, checks_by_suite: dict[str, list[Check]], batches: dict[str, Any]) -> None:
    """Second pass, for the row-level expectations that failed only: validate each again on its batch with a
    sample of offending values (as GX reports by default), put that result in place of the first one and store
    the suite's result again, so ``ops.dq_results`` and Data Docs show the same as a single detailed pass."""
    for key, vr in result.run_results.items():
        by_id = {check.expectation.id: check for check in checks_by_suite[vr.suite_name]}
        changed = False
        for i, er in enumerate(vr.results):
            check = by_id.get(er.expectation_config.id)
            if check is None or er.success or "partial_unexpected_list" not in (er.result or {}):
                continue
            detailed = batches[vr.suite_name].get_batch().validate(check.expectation, result_format=DETAIL_PASS)
            if detailed.success == er.success:  # the same verdict (data changing in between keeps the first)
                vr.results[i] = detailed
                changed = True
        if changed:
            context.validation_results_store.set(key, vr)


def _exception(info: dict) -> str | None:
    """The first exception message of a GX result (flat, or keyed by metric)."""
    candidates = [info, *[v for v in info.values() if isinstance(v, dict)]]
    for c in candidates:
        if c.get("raised_exception"):
            return str(c.get("exception_message"))[:500]
    return None


def _observed(detail: dict) -> str | None:
    if "observed_value" in detail:
        return json.dumps(detail["observed_value"], default=str)
    if "unexpected_count" in detail:
        return f"{detail['unexpected_count']} unexpected of {detail.get('element_count')}"
    return None


def _record(cur: psycopg2.extensions.cursor, gate: str, run_id: str, business_date: date, rows: list[dict],
            docs_index: Path) -> None:
    """Replace the gate's results for (run_id, business date) in ops.dq_results (in the caller's transaction)."""
    cur.execute("delete from ops.dq_results where gate = %s and run_id = %s and business_date = %s",
                (gate, run_id, business_date))
    for r in rows:
        cur.execute(
            """
            insert into ops.dq_results (run_id, gate, business_date, table_name, expectation, severity, success,
                                        observed_value, unexpected_count, unexpected_percent, sample, error,
                                        data_docs, checked_at)
            values (%(run_id)s, %(gate)s, %(business_date)s, %(table_name)s, %(expectation)s, %(severity)s,
                    %(success)s, %(observed_value)s, %(unexpected_count)s, %(unexpected_percent)s, %(sample)s,
                    %(error)s, %(data_docs)s, clock_timestamp())
            """,
            {**r, "run_id": run_id, "gate": gate, "business_date": business_date,
             "data_docs": str(docs_index)},
        )
