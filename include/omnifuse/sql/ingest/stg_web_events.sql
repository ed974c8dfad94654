-- stg_web_events: type one arrival date of raw.web_events into staging.web_events.
-- Grain of the output: one row per event_id (the first copy by file, line wins). Every other line goes to
-- quarantine.web_events with the first rule it breaks. Prices are EUR unless product.currency names another
-- currency with a rate (a GA4 export in the shop's currency): then they are converted to EUR here.
-- Parameters: business_date (the arrival date this load owns), late_window_days.
-- Returns one row: rows_staged, duplicates_dropped, quarantine_by_reason (jsonb reason -> count).
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, _parse_error
    from raw.web_events
    where _arrival_date = %(business_date)s
),

event_types (source_event_type, event_type) as (
    values
        ('product_view', 'view'),
        ('product_click', 'click'),
        ('add_to_cart', 'add_to_cart'),
        ('checkout_complete', 'purchase'),
        ('refund', 'return')
),

classified as materialized (
    select
        r._arrival_date, r._source_file, r._line_no, e.event_id, event_types.event_type, e.source_event_type,
        t.event_ts, e.cookie_id, e.session_id, e.customer_id, e.sku, t.price * rates.rate_to_eur as price,
        -- a refund (GA4 `refund`) is a return: staged with a negative quantity, as a till's return line
        case when event_types.event_type = 'return' then -t.quantity else t.quantity end as quantity, e.page,
        e.referrer, e.user_agent, t.event_ts < %(business_date)s::date::timestamptz as is_late, rule.reason,
        case when rule.reason is not null then r.line end as line,
        case
            when rule.reason = 'unknown_sku' then 'sku=' || e.sku
            when rule.reason = 'invalid_price' then 'price=' || coalesce(e.price_text, '') || ' catalog=' || coalesce(products.price_eur::text, '')
            when rule.reason in ('clock_skew', 'too_late', 'invalid_timestamp') then 'ts=' || e.ts_text
            when rule.reason = 'unknown_event_type' then 'type=' || e.source_event_type
            when rule.reason = 'unknown_currency' then 'currency=' || e.currency
        end as detail
    from raw_lines as r
    -- each line is parsed once: a lateral subquery with offset 0 is computed once per row, not inlined
    cross join lateral (
        select case when r._parse_error is null and ops.is_valid_input(r.line, 'jsonb') then r.line::jsonb end as doc
        offset 0
    ) as p
    cross join lateral (
        select
            nullif(p.doc ->> 'event_id', '') as event_id,
            nullif(p.doc ->> 'type', '') as source_event_type,
            nullif(p.doc ->> 'ts', '') as ts_text,
            nullif(p.doc ->> 'cookie_id', '') as cookie_id,
            nullif(p.doc ->> 'session_id', '') as session_id,
            nullif(p.doc ->> 'customer_id', '') as customer_id,
            nullif(p.doc #>> '{product,sku}', '') as sku,
            p.doc #>> '{product,price}' as price_text,
            -- a view or click without a quantity is one item; a cart or purchase line must say how many
            p.doc #>> '{product,quantity}' as quantity_given,
            upper(coalesce(nullif(p.doc #>> '{product,currency}', ''), 'EUR')) as currency,
            p.doc #>> '{context,page}' as page,
            p.doc #>> '{context,referrer}' as referrer,
            p.doc #>> '{context,user_agent}' as user_agent
        offset 0
    ) as e
    left join event_types on event_types.source_event_type = e.source_event_type
    left join core.product_snapshots as products
        on products.snapshot_date = %(business_date)s and products.product_id = e.sku
    left join core.known_rates(%(business_date)s) as rates on rates.currency = e.currency
    cross join lateral (
        select
            case when ops.is_valid_input(e.ts_text, 'timestamptz') then e.ts_text::timestamptz end as event_ts,
            case when ops.is_valid_input(e.price_text, 'numeric') then e.price_text::numeric end as price,
            case when ops.is_valid_input(coalesce(e.quantity_given, '1'), 'integer')
                then coalesce(e.quantity_given, '1')::integer end as quantity
        offset 0
    ) as t
    cross join lateral (
        select case
            when _parse_error is not null then _parse_error
            when p.doc is null then 'malformed_json'
            when e.event_id is null then 'missing_field:event_id'
            when e.source_event_type is null then 'missing_field:type'
            when e.ts_text is null then 'missing_field:ts'
            when e.sku is null then 'missing_field:sku'
            when e.cookie_id is null then 'missing_field:cookie_id'
            when e.price_text is null then 'missing_field:price'
            when event_types.event_type is null then 'unknown_event_type'
            when e.quantity_given is null and event_types.event_type in ('add_to_cart', 'purchase')
                then 'missing_field:quantity'
            when t.event_ts is null then 'invalid_timestamp'
            when t.price is null then 'invalid_price'
            when t.quantity is null or t.quantity <= 0 or t.quantity > %(max_quantity)s then 'invalid_quantity'
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
