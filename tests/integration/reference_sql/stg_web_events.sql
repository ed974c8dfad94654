-- stg_web_events: type one arrival date of raw.web_events into staging.web_events.
-- Grain of the output: one row per event_id (the first copy by file, line wins). Every other line goes to
-- quarantine.web_events with the first rule it breaks. Parameters: business_date, late_window_days.
-- Returns one row: rows_staged, duplicates_dropped, quarantine_by_reason (jsonb reason -> count).
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, _parse_error
    from raw.web_events
    where _arrival_date = %(business_date)s
),

parsed as materialized (
    select
        raw_lines.*,
        case when ops.is_valid_input(line, 'jsonb') then line::jsonb end as doc
    from raw_lines
),

extracted as materialized (
    select
        parsed.*,
        nullif(doc ->> 'event_id', '') as event_id,
        nullif(doc ->> 'type', '') as source_event_type,
        nullif(doc ->> 'ts', '') as ts_text,
        nullif(doc ->> 'cookie_id', '') as cookie_id,
        nullif(doc ->> 'session_id', '') as session_id,
        nullif(doc ->> 'customer_id', '') as customer_id,
        nullif(doc #>> '{product,sku}', '') as sku,
        doc #>> '{product,price}' as price_text,
        -- a view or click without a quantity is one item; a cart or purchase line must say how many
        coalesce(doc #>> '{product,quantity}', '1') as quantity_text,
        doc #>> '{product,quantity}' is null as quantity_missing,
        doc #>> '{context,page}' as page,
        doc #>> '{context,referrer}' as referrer,
        doc #>> '{context,user_agent}' as user_agent
    from parsed
),

event_types (source_event_type, event_type) as (
    values
        ('product_view', 'view'),
        ('product_click', 'click'),
        ('add_to_cart', 'add_to_cart'),
        ('checkout_complete', 'purchase')
),

typed as (
    select
        extracted.*,
        event_types.event_type,
        case when ops.is_valid_input(ts_text, 'timestamptz') then ts_text::timestamptz end as event_ts,
        case when ops.is_valid_input(price_text, 'numeric') then price_text::numeric end as price,
        case when ops.is_valid_input(quantity_text, 'integer') then quantity_text::integer end as quantity,
        products.price_eur as catalog_price
    from extracted
    left join event_types on event_types.source_event_type = extracted.source_event_type
    left join core.product_snapshots as products
        on products.snapshot_date = %(business_date)s and products.product_id = extracted.sku
),

classified as (
    select
        typed.*,
        case
            when _parse_error is not null then _parse_error
            when doc is null then 'malformed_json'
            when event_id is null then 'missing_field:event_id'
            when source_event_type is null then 'missing_field:type'
            when ts_text is null then 'missing_field:ts'
            when sku is null then 'missing_field:sku'
            when cookie_id is null then 'missing_field:cookie_id'
            when price_text is null then 'missing_field:price'
            when event_type is null then 'unknown_event_type'
            when quantity_missing and event_type in ('add_to_cart', 'purchase') then 'missing_field:quantity'
            when event_ts is null then 'invalid_timestamp'
            when price is null then 'invalid_price'
            when quantity is null or quantity <= 0 or quantity > %(max_quantity)s then 'invalid_quantity'
            when catalog_price is null then 'unknown_sku'
            when price < 0 or price > %(price_outlier_factor)s * catalog_price then 'invalid_price'
            when event_ts >= (%(business_date)s::date + 1)::timestamptz + interval '1 hour' then 'clock_skew'
            when event_ts < (%(business_date)s::date - %(late_window_days)s::int)::timestamptz then 'too_late'
        end as reason
    from typed
),

valid as (
    select
        classified.*,
        row_number() over (partition by event_id order by _source_file, _line_no) as copy_no
    from classified
    where reason is null
),

quarantined as (
    insert into quarantine.web_events (_arrival_date, _source_file, _line_no, line, reason, detail)
    select
        _arrival_date, _source_file, _line_no, line, reason,
        case
            when reason = 'unknown_sku' then 'sku=' || sku
            when reason = 'invalid_price' then 'price=' || coalesce(price_text, '') || ' catalog=' || coalesce(catalog_price::text, '')
            when reason in ('clock_skew', 'too_late', 'invalid_timestamp') then 'ts=' || ts_text
            when reason = 'unknown_event_type' then 'type=' || source_event_type
        end
    from classified
    where reason is not null
    returning reason
),

staged as (
    insert into staging.web_events (
        event_id, event_type, source_event_type, event_ts, cookie_id, session_id, customer_id, sku, price,
        quantity, page, referrer, user_agent, is_late, _arrival_date, _source_file, _line_no
    )
    select
        event_id, event_type, source_event_type, event_ts, cookie_id, session_id, customer_id, sku, price,
        quantity, page, referrer, user_agent, event_ts < %(business_date)s::date::timestamptz,
        _arrival_date, _source_file, _line_no
    from valid
    where copy_no = 1
    returning 1
),

final as (
    select
        (select count(*) from staged) as rows_staged,
        (select count(*) from valid where copy_no > 1) as duplicates_dropped,
        (select coalesce(jsonb_object_agg(reason, n), '{}'::jsonb)
         from (select reason, count(*) as n from quarantined group by reason) as by_reason) as quarantine_by_reason
)

select * from final
