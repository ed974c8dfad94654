-- stg_store_sales: type one arrival date of raw.store_sales (POS CSV, columns in raw.fields).
-- Grain of the output: one row per (receipt_id, line_no). Store-local time is converted with the store's
-- time zone as of the arrival date (core.store_snapshots); local_time_note flags DST-ambiguous or non-existent local times (migration 0013);
-- prices stay in the till currency and are checked against the catalog in EUR
-- using the latest FX rate on or before the business date (core.fx_rates; EUR is always known).
-- A negative quantity is a return or cancellation (kept; core.interactions makes it a `return`); a zero price
-- is valid (free items). SKUs matching non_product_skus (postage, fees, adjustments) are staged as
-- line_kind = 'non_product' and are not checked against the catalog. Bounds come from omnifuse.rules.
-- Parameters: business_date (the arrival date this load owns), late_window_days, max_quantity,
-- price_outlier_factor, non_product_skus. Returns rows_staged, duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.store_sales
    where _arrival_date = %(business_date)s
),

-- each store as of this arrival date: the latest list delivered on or before it (the earliest list for a date
-- before any), so a re-run of an older date reads its tills in that date's time zone and currency
stores_as_of as (
    select distinct on (store_id) store_id, timezone, currency
    from core.store_snapshots
    order by store_id, snapshot_date <= %(business_date)s desc,
        case when snapshot_date <= %(business_date)s then snapshot_date end desc, snapshot_date
),

-- one narrow row per line: typed columns, the first rule broken, and the line itself only when quarantined
classified as materialized (
    select
        r._arrival_date, r._source_file, r._line_no, e.receipt_id, t.line_no, e.store_id, e.loyalty_card, e.sku,
        t.quantity, t.unit_price, e.currency, t.sold_at_local, z.event_ts, e.line_kind, z.local_time_note,
        t.sold_at_local < %(business_date)s::date::timestamp as is_late, rule.reason,
        case when rule.reason is not null then r.line end as line,
        case
            when rule.reason = 'unknown_sku' then 'sku=' || e.sku
            when rule.reason = 'invalid_price' then 'unit_price=' || coalesce(e.price_text, '') || ' ' || coalesce(e.currency, '') || ' catalog_eur=' || coalesce(products.price_eur::text, '')
            when rule.reason = 'unknown_store' then 'store_id=' || e.store_id
            when rule.reason = 'unknown_currency' then 'currency=' || e.currency || ' store_currency=' || coalesce(stores.currency, '')
            when rule.reason in ('clock_skew', 'too_late', 'invalid_timestamp') then 'sold_at=' || e.ts_text
            when rule.reason = 'invalid_quantity' then 'quantity=' || e.quantity_text
        end as detail
    from raw_lines as r
    -- lateral subqueries with offset 0 are computed once per row (not inlined into every expression)
    cross join lateral (
        select
            nullif(r.fields ->> 'receipt_id', '') as receipt_id,
            nullif(r.fields ->> 'line_no', '') as line_no_text,
            nullif(r.fields ->> 'store_id', '') as store_id,
            nullif(r.fields ->> 'loyalty_card', '') as loyalty_card,
            nullif(r.fields ->> 'sku', '') as sku,
            nullif(r.fields ->> 'quantity', '') as quantity_text,
            nullif(r.fields ->> 'unit_price', '') as price_text,
            upper(nullif(r.fields ->> 'currency', '')) as currency,
            nullif(r.fields ->> 'sold_at', '') as ts_text,
            case when coalesce(r.fields ->> 'sku', '') ~* %(non_product_skus)s then 'non_product' else 'product' end
                as line_kind
        offset 0
    ) as e
    left join stores_as_of as stores on stores.store_id = e.store_id
    left join core.known_rates(%(business_date)s) as rates on rates.currency = e.currency
    left join core.product_snapshots as products
        on products.snapshot_date = %(business_date)s and products.product_id = e.sku
    cross join lateral (
        select
            case when ops.is_valid_input(e.line_no_text, 'integer') then e.line_no_text::integer end as line_no,
            case when ops.is_valid_input(e.quantity_text, 'integer') then e.quantity_text::integer end as quantity,
            case when ops.is_valid_input(e.price_text, 'numeric') then e.price_text::numeric end as unit_price,
            -- ISO 8601 only (a shop's own format goes through its mapping): '02/11/2026' is not read as 11 February
            case
                when e.ts_text ~ '^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$'
                    and ops.is_valid_input(e.ts_text, 'timestamp') then e.ts_text::timestamp
            end as sold_at_local
        offset 0
    ) as t
    cross join lateral (
        select
            t.sold_at_local at time zone stores.timezone as event_ts,
            -- a fall-back hour's local time reads back from two instants one hour apart (the conversion picks the
            -- later); a spring-forward gap's local time reads back as another time (column comment: migration 0013)
            case
                when (t.sold_at_local at time zone stores.timezone) at time zone stores.timezone <> t.sold_at_local
                    then 'nonexistent'
                when ((t.sold_at_local - interval '1 hour') at time zone stores.timezone) + interval '1 hour'
                         <> t.sold_at_local at time zone stores.timezone
                     and (((t.sold_at_local - interval '1 hour') at time zone stores.timezone) + interval '1 hour')
                         at time zone stores.timezone = t.sold_at_local then 'ambiguous'
                when ((t.sold_at_local + interval '1 hour') at time zone stores.timezone) - interval '1 hour'
                         <> t.sold_at_local at time zone stores.timezone
                     and (((t.sold_at_local + interval '1 hour') at time zone stores.timezone) - interval '1 hour')
                         at time zone stores.timezone = t.sold_at_local then 'ambiguous'
            end as local_time_note
        offset 0
    ) as z
    cross join lateral (
        select case
            when _parse_error is not null then _parse_error
            when e.receipt_id is null then 'missing_field:receipt_id'
            when e.line_no_text is null then 'missing_field:line_no'
            when e.store_id is null then 'missing_field:store_id'
            when e.sku is null then 'missing_field:sku'
            when e.quantity_text is null then 'missing_field:quantity'
            when e.price_text is null then 'missing_field:unit_price'
            when e.currency is null then 'missing_field:currency'
            when e.ts_text is null then 'missing_field:sold_at'
            when t.line_no is null then 'invalid_line_no'
            when t.sold_at_local is null then 'invalid_timestamp'
            when stores.timezone is null then 'unknown_store'
            when rates.rate_to_eur is null or e.currency <> stores.currency then 'unknown_currency'
            when t.unit_price is null then 'invalid_price'
            when t.quantity is null or t.quantity = 0 or abs(t.quantity) > %(max_quantity)s then 'invalid_quantity'
            -- a till's business day is the store's local day (an evening sale in New York is past midnight UTC)
            when t.sold_at_local >= (%(business_date)s::date + 1)::timestamp + interval '1 hour' then 'clock_skew'
            when t.sold_at_local < (%(business_date)s::date - %(late_window_days)s::int)::timestamp then 'too_late'
            -- an adjustment line (bad debt, a discount) may carry any price: it is money, not a product
            when e.line_kind = 'non_product' then null
            when t.unit_price < 0 then 'invalid_price'
            when products.price_eur is null then 'unknown_sku'
            when t.unit_price * rates.rate_to_eur > %(price_outlier_factor)s * products.price_eur then 'invalid_price'
        end as reason
        offset 0
    ) as rule
),

-- accounting tail: sql/ingest/tail/accounting.sql
