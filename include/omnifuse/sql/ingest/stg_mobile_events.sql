-- stg_mobile_events: type one arrival date of raw.mobile_events into staging.mobile_events.
-- Grain of the output: one row per event id (first copy by file, line wins). Epoch milliseconds become UTC.
-- The currency must have a rate in core.fx_rates (EUR always does); a missing currency is quarantined, never
-- assumed; prices are checked against the catalog in EUR.
-- Parameters: business_date (the arrival date this load owns), late_window_days, max_quantity,
-- price_outlier_factor.
-- Returns rows_staged, duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, _parse_error
    from raw.mobile_events
    where _arrival_date = %(business_date)s
),

event_types (source_event_type, event_type) as (
    values
        ('view_item', 'view'),
        ('tap_item', 'click'),
        ('add_to_cart', 'add_to_cart'),
        ('purchase', 'purchase'),
        ('refund', 'return')
),

-- one narrow row per line: typed columns, the first rule broken, and the line itself only when quarantined
classified as materialized (
    select
        r._arrival_date, r._source_file, r._line_no, e.event_id, event_types.event_type, e.source_event_type,
        t.event_ts, e.device_id, e.customer_id, e.sku, t.price,
        -- a refund (GA4 `refund`) is a return: staged with a negative quantity, as a till's return line
        case when event_types.event_type = 'return' then -t.quantity else t.quantity end as quantity, e.currency,
        e.app_version, e.os, t.event_ts < %(business_date)s::date::timestamptz as is_late, rule.reason,
        case when rule.reason is not null then r.line end as line,
        case
            when rule.reason = 'unknown_sku' then 'sku=' || e.sku
            when rule.reason = 'invalid_price' then 'price=' || coalesce(e.price_text, '') || ' catalog=' || coalesce(products.price_eur::text, '')
            when rule.reason in ('clock_skew', 'too_late') then 'ts=' || t.event_ts::text
            when rule.reason = 'invalid_timestamp' then 'timestamp_ms=' || e.ts_text
            when rule.reason = 'unknown_event_type' then 'event=' || e.source_event_type
        end as detail
    from raw_lines as r
    -- each line is parsed once: a lateral subquery with offset 0 is computed once per row, not inlined
    cross join lateral (
        select case when r._parse_error is null and ops.is_valid_input(r.line, 'jsonb') then r.line::jsonb end as doc
        offset 0
    ) as p
    cross join lateral (
        select
            nullif(p.doc ->> 'id', '') as event_id,
            nullif(p.doc ->> 'event', '') as source_event_type,
            nullif(p.doc ->> 'timestamp_ms', '') as ts_text,
            nullif(p.doc ->> 'device_id', '') as device_id,
            nullif(p.doc ->> 'user_id', '') as customer_id,
            nullif(p.doc #>> '{properties,sku}', '') as sku,
            p.doc #>> '{properties,price}' as price_text,
            -- a view or tap without a quantity is one item; a cart or purchase line must say how many
            p.doc #>> '{properties,quantity}' as quantity_given,
            upper(nullif(p.doc #>> '{properties,currency}', '')) as currency,
            p.doc #>> '{app,version}' as app_version,
            p.doc #>> '{app,os}' as os
        offset 0
    ) as e
    left join event_types on event_types.source_event_type = e.source_event_type
    left join core.product_snapshots as products
        on products.snapshot_date = %(business_date)s and products.product_id = e.sku
    left join core.known_rates(%(business_date)s) as rates on rates.currency = e.currency
    cross join lateral (
        select
            -- years 1 to 9999 only: to_timestamp fails the whole statement on a bigint beyond its range
            case when ops.is_valid_input(e.ts_text, 'bigint') then
                case when e.ts_text::bigint between -62135596800000 and 253402300799999
                    then to_timestamp(e.ts_text::bigint / 1000.0) end
            end as event_ts,
            case when ops.is_valid_input(e.price_text, 'numeric') then e.price_text::numeric end as price,
            case when ops.is_valid_input(coalesce(e.quantity_given, '1'), 'integer')
                then coalesce(e.quantity_given, '1')::integer end as quantity
        offset 0
    ) as t
    cross join lateral (
        select case
            when _parse_error is not null then _parse_error
            when p.doc is null then 'malformed_json'
            when e.event_id is null then 'missing_field:id'
            when e.source_event_type is null then 'missing_field:event'
            when e.ts_text is null then 'missing_field:timestamp_ms'
            when e.sku is null then 'missing_field:sku'
            when e.device_id is null then 'missing_field:device_id'
            when e.price_text is null then 'missing_field:price'
            when event_types.event_type is null then 'unknown_event_type'
            when e.quantity_given is null and event_types.event_type in ('add_to_cart', 'purchase')
                then 'missing_field:quantity'
            when t.event_ts is null then 'invalid_timestamp'
            when t.price is null then 'invalid_price'
            when t.quantity is null or t.quantity <= 0 or t.quantity > %(max_quantity)s then 'invalid_quantity'
            when e.currency is null then 'missing_field:currency'
            when rates.rate_to_eur is null then 'unknown_currency'
            when products.price_eur is null then 'unknown_sku'
            when t.price < 0 or t.price * rates.rate_to_eur > %(price_outlier_factor)s * products.price_eur
                then 'invalid_price'
            when t.event_ts >= (%(business_date)s::date + 1)::timestamptz + interval '1 hour' then 'clock_skew'
            when t.event_ts < (%(business_date)s::date - %(late_window_days)s::int)::timestamptz then 'too_late'
        end as reason
        offset 0
    ) as rule
),

-- accounting tail: sql/ingest/tail/accounting.sql
