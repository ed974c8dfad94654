"""Quality gates: each check fails with its severity on a planted defect; a clean day passes everything."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from omnifuse import warehouse
from omnifuse.daily import run_day
from omnifuse.identity import resolve_identities
from omnifuse.ingest import ingest_source
from omnifuse.interactions import build_interactions
from omnifuse.quality import QualityGateError, run_gate

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]
P = f"p{D:%Y%m%d}"


@pytest.fixture(scope="module")
def loaded_world(tiny_world, warehouse_url):
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(warehouse_url)
    for day in DAYS:
        run_day(day, tiny_world, warehouse_url)
    return tiny_world


def _reload(world, url, *sources):
    def restore():
        for name in sources:
            if name == "identity":
                resolve_identities(D, url=url)
            elif name == "interactions":
                build_interactions(D, url=url)
            else:
                ingest_source(name, D, landing_dir=world, url=url)
    return restore


# (gate, planted SQL, expectation that must fail, severity, what restores the day)
CASES = {
    "web_price_negative": ("staging", f"update staging.web_events_{P} set price = -1 where _line_no < 5",
                               "staging.web_events", "expect_column_values_to_be_between(price)", "error", ("web",)),
    "web_duplicate_key": ("staging", f"insert into staging.web_events_{P} select * from staging.web_events_{P} limit 2",
                          "staging.web_events", "expect_column_values_to_be_unique(event_id)", "error", ("web",)),
    "web_stale_events": ("staging", f"update staging.web_events_{P} set event_ts = event_ts - interval '10 days' "
                                    "where _line_no < 5",
                         "staging.web_events", "fresh_events(event_ts)", "error", ("web",)),
    "web_extra_column": ("staging", "alter table staging.web_events add column surprise integer",
                         "staging.web_events", "expect_table_columns_to_match_set", "error", ()),
    "mobile_missing_device": ("staging", f"update staging.mobile_events_{P} set device_id = null where _line_no < 5",
                              "staging.mobile_events", "expect_column_values_to_not_be_null(device_id)", "error",
                              ("mobile",)),
    "mobile_unknown_currency": ("staging", f"update staging.mobile_events_{P} set currency = 'XYZ' where _line_no < 5",
                                "staging.mobile_events", "known_currencies(currency)", "error",
                                ("mobile",)),
    "mobile_price_type": ("staging", "alter table staging.mobile_events alter column price type double precision",
                          "staging.mobile_events", "expect_column_values_to_be_of_type(price)", "error", ()),
    "social_unknown_action": ("staging", f"update staging.social_interactions_{P} set event_type = 'poke' "
                                         "where _line_no < 5",
                              "staging.social_interactions", "expect_column_values_to_be_in_set(event_type)", "error",
                              ("social",)),
    "social_new_platform": ("staging", f"update staging.social_interactions_{P} set platform = 'myspace' "
                                       "where _line_no < 5",
                            "staging.social_interactions", "expect_column_values_to_be_in_set(platform)", "warn",
                            ("social",)),
    "store_absurd_quantity": ("staging", f"update staging.store_sales_{P} set quantity = 80995 where _line_no < 5",
                              "staging.store_sales", "expect_column_values_to_be_between(quantity)", "error",
                              ("store",)),
    "store_unknown_product": ("staging", f"update staging.store_sales_{P} set sku = 'SKU999999' where _line_no < 5",
                              "staging.store_sales", "known_products(sku)", "error", ("store",)),
    "store_volume_drop": ("staging", f"delete from staging.store_sales_{P} where _line_no > 20",
                          "staging.store_sales", "volume_band", "warn", ("store",)),
    "interactions_channel_mix": ("core", f"update core.interactions_{P} set channel = 'store' "
                                         "where channel in ('web', 'mobile')",
                                 "core.interactions", "channel_mix", "warn", ("interactions",)),
    "interactions_unattributed": ("core", f"update core.interactions_{P} set customer_id = null",
                                  "core.interactions", "expect_column_proportion_of_non_null_values_to_be_between"
                                                       "(customer_id)", "warn", ("interactions",)),
    "identity_resolved_without_customer": ("core", "update core.identity_map set customer_id = null "
                                                   "where identifier_type = 'cookie_id' and status = 'resolved'",
                                           "core.identity_map", "expect_column_values_to_not_be_null(customer_id)",
                                           "error", ("identity",)),
    "product_price_negative": ("core", "update core.products set price_eur = -1 where product_id = 'SKU000001'",
                               "core.products", "expect_column_values_to_be_between(price_eur)", "error",
                                   ("catalog",)),
    "interactions_positive_return": ("core", f"update core.interactions_{P} set event_type = 'return' "
                                             "where event_type = 'purchase' and revenue > 0",
                                     "core.interactions", "unexpected_rows(revenue is negative for returns only)",
                                     "error", ("interactions",)),
    "rebuilt_day_unknown_product": ("core", "update core.interactions set product_id = 'SKU999999' "
                                            f"where event_date = '{DAYS[0]}' and channel = 'web'",
                                    "core.interactions", "known_products(product_id)", "error", ("interactions",)),
    "customer_bad_hash": ("core", "update core.customers set email_sha256 = 'abc' where customer_id = 'C0000001'",
                          "core.customers", "expect_column_value_lengths_to_equal(email_sha256)", "error", ("crm",)),
}
UNDO = {
    "web_extra_column": "alter table staging.web_events drop column surprise",
    "mobile_price_type": "alter table staging.mobile_events alter column price type numeric",
}


def _results(url, gate, run_id):
    with warehouse.transaction(url) as cur:
        cur.execute("select table_name, expectation, severity, success, observed_value, sample from ops.dq_results "
                    "where gate = %s and run_id = %s and business_date = %s", (gate, run_id, D))
        return cur.fetchall()


def test_clean_day_passes_every_check(loaded_world, warehouse_url):
    for gate in ("staging", "core"):
        summary = run_gate(gate, D, url=warehouse_url, run_id="clean")
        rows = _results(warehouse_url, gate, "clean")
        assert len(rows) == summary["checks"] > 10
        assert [r for r in rows if not r[3]] == []
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute("select usable from mart.data_quality_daily where business_date = %s", (D,))
        assert {r[0] for r in cur.fetchall()} == {True}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_defect_fails_its_check_with_its_severity(case, loaded_world, warehouse_url):
    gate, plant, table, expectation, severity, restore = CASES[case]
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute(plant)
        assert cur.rowcount != 0
    try:
        if severity == "error":
            with pytest.raises(QualityGateError) as failure:
                run_gate(gate, D, url=warehouse_url, run_id=case)
            assert table in str(failure.value) and expectation in str(failure.value)
        else:
            run_gate(gate, D, url=warehouse_url, run_id=case)  # warnings never fail the gate
        failed = {(r[0], r[1], r[2]) for r in _results(warehouse_url, gate, case) if not r[3]}
        assert (table, expectation, severity) in failed
    finally:
        with warehouse.transaction(warehouse_url) as cur:
            if case in UNDO:
                cur.execute(UNDO[case])
        _reload(loaded_world, warehouse_url, *restore)()
        run_gate(gate, D, url=warehouse_url, run_id=f"{case}-restored")  # the day is usable again


# --- two passes: counts for everything, samples only for what failed (issue 15) -----------------------------------

def _detail(url, run_id, table, expectation):
    with warehouse.transaction(url) as cur:
        cur.execute("select success, observed_value, unexpected_count, unexpected_percent, sample from ops.dq_results "
                    "where run_id = %s and business_date = %s and table_name = %s and expectation = %s",
                    (run_id, D, table, expectation))
        return cur.fetchone()


def test_a_failed_row_level_check_keeps_its_sample_and_counts(loaded_world, warehouse_url):
    """The cheap first pass fetches no sample; the check that failed is validated again with one, so the stored
    result, the gate's message and Data Docs name the offending values as a single detailed pass did."""
    from omnifuse.config import load_settings

    with warehouse.transaction(warehouse_url) as cur:
        cur.execute(f"update staging.web_events_{P} set price = -7.25 where _line_no < 5")  # noqa: S608 - fixed name
        planted = cur.rowcount
        cur.execute(f"select count(*) from staging.web_events_{P}")  # noqa: S608
        total = cur.fetchone()[0]
    try:
        with pytest.raises(QualityGateError) as failure:
            run_gate("staging", D, url=warehouse_url, run_id="two-pass")
        assert "-7.25" in str(failure.value)
        success, observed, unexpected, percent, sample = _detail(
            warehouse_url, "two-pass", "staging.web_events", "expect_column_values_to_be_between(price)")
        assert not success and unexpected == planted and observed == f"{planted} unexpected of {total}"
        assert percent == pytest.approx(100 * planted / total)
        assert sample and len(sample) == min(planted, 5) and {float(v) for v in sample} == {-7.25}
        # a check that passed keeps its figures (first pass only)
        success, observed, unexpected, _, sample = _detail(
            warehouse_url, "two-pass", "staging.web_events", "expect_column_values_to_not_be_null(event_id)")
        assert success and unexpected == 0 and observed == f"0 unexpected of {total}" and sample == []
        docs = load_settings().state_dir / "data_docs" / "staging" / D.isoformat()
        pages = [p.read_text() for p in docs.rglob("*.html") if "validations" in p.parts]
        assert any("-7.25" in page for page in pages)  # the sample reached Data Docs
    finally:
        _reload(loaded_world, warehouse_url, "web")()
        run_gate("staging", D, url=warehouse_url, run_id="two-pass-restored")


def test_custom_checks_count_their_rows(loaded_world, warehouse_url):
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute(f"update staging.store_sales_{P} set sku = 'SKU999999' where _line_no < 5 "  # noqa: S608
                    "and line_kind = 'product'")
        planted = cur.rowcount
    try:
        with pytest.raises(QualityGateError):
            run_gate("staging", D, url=warehouse_url, run_id="counted")
        success, observed, *_ = _detail(warehouse_url, "counted", "staging.store_sales", "known_products(sku)")
        assert not success and observed == str(planted)
        success, observed, *_ = _detail(warehouse_url, "counted", "staging.web_events", "known_products(sku)")
        assert success and observed == "0"
    finally:
        _reload(loaded_world, warehouse_url, "store")()
        run_gate("staging", D, url=warehouse_url, run_id="counted-restored")


def test_a_channel_the_shop_does_not_have_passes_its_volume_check(tiny_world, clean_warehouse, tmp_path):
    """Issue 23 (10): a shop without a mobile app delivers valid empty mobile folders every day; its volume band
    passes (a silent channel's band starts at 0) instead of warning every day."""
    import shutil

    from omnifuse.manifest import write_manifest

    world = tmp_path / "landing"
    shutil.copytree(tiny_world, world)
    for day in DAYS:
        folder = world / "mobile" / day.isoformat()
        shutil.rmtree(folder)
        folder.mkdir()
        write_manifest(folder)
    for day in DAYS:
        run_day(day, world, clean_warehouse)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select business_date, success from ops.dq_results where table_name = 'staging.mobile_events' "
                    "and expectation = 'volume_band' order by 1")
        assert cur.fetchall() == [(day, True) for day in DAYS]
