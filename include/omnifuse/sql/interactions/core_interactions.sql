-- core_interactions: rebuild one event date of core.interactions from every channel's staged rows.
-- Filters on: the event date (event_ts within that UTC day), read from the arrival dates (_arrival_date) that
-- can hold it and whose staging gate passed.
-- Grain of the output: one row per real event (channel, event_key). Staged rows of an event date come from
-- arrival dates event_date - 1 (clock skew) .. event_date + late_window_days (late events); a copy of the
-- same event staged again on a later arrival date goes to quarantine.interactions, never in twice. Only
-- arrival batches whose staging gate passed are read (a blocked batch never reaches core). A store line with
-- a negative quantity, and a web or app refund (staged with a negative quantity), is a `return` (signed
-- revenue); non-product till lines (postage, fees) are left out.
-- Customers are resolved through core.identity_map: the logged-in customer id first, else the cookie,
-- device, social handle or loyalty card. Revenue is converted to EUR with the latest rate on or before the
-- event date. The caller has emptied the date's partition and quarantine rows (idempotent per date).
-- Parameters: event_date, late_window_days. Returns rows_staged, rows_built, rows_quarantined, customers,
-- anonymous_rows.
with

-- the staging gate of a business date judges that date's arrival batch: its business date is the arrival date
passed_arrival_dates as (
    select business_date as _arrival_date
    from ops.quality_status
    where gate = 'staging' and passed
),

web as (
    select
        'web' as channel, event_id as event_key, 'cookie_id' as identifier_type, cookie_id as identifier,
        customer_id as login_customer_id, sku as product_id, event_type, event_ts, quantity,
        case when event_type in ('purchase', 'return') then price * quantity else 0 end as amount, 'EUR' as currency,
        session_id as session_key, null::text as store_id, is_late, 'staging.web_events' as source_table,
        _arrival_date, _source_file, _line_no
    from staging.web_events
),

mobile as (
    select
        'mobile', event_id, 'device_id', device_id, customer_id, sku, event_type, event_ts, quantity,
        case when event_type in ('purchase', 'return') then price * quantity else 0 end, currency,
        device_id || ':' || (event_ts at time zone 'UTC')::date, null::text, is_late, 'staging.mobile_events',
        _arrival_date, _source_file, _line_no
    from staging.mobile_events
),

social as (
    select
        'social', interaction_id, 'social_handle', handle, null::text, sku, event_type, event_ts, 1,
        0::numeric, 'EUR', null::text, null::text, is_late, 'staging.social_interactions', _arrival_date,
        _source_file, _line_no
    from staging.social_interactions
),

store as (
    select
        'store', receipt_id || '/' || line_no, 'loyalty_card', loyalty_card, null::text, sku,
        case when quantity < 0 then 'return' else 'purchase' end,
        event_ts, quantity, unit_price * quantity, currency, receipt_id, store_id, is_late,
        'staging.store_sales', _arrival_date, _source_file, _line_no
    from staging.store_sales
    where line_kind = 'product'
),

-- the event date's staged rows, from arrival batches whose staging gate passed (the filter reaches each
-- channel's table, where it prunes partitions)
staged as (
    select *
    from (
        select * from web
        union all select * from mobile
        union all select * from social
        union all select * from store
    ) as channels
    where _arrival_date in (select _arrival_date from passed_arrival_dates)
        and _arrival_date between %(event_date)s::date - 1 and %(event_date)s::date + %(late_window_days)s::int
        and event_ts >= %(event_date)s::date::timestamptz
        and event_ts < (%(event_date)s::date + 1)::timestamptz
),

rates as (
    select distinct on (currency) currency, rate_to_eur
    from core.fx_rates
    where rate_date <= %(event_date)s
    order by currency, rate_date desc
),

resolved as materialized (
    select
        staged.*,
        row_number() over (
            partition by staged.channel, staged.event_key
            order by staged._arrival_date, staged._source_file, staged._line_no
        ) as copy_no,
        coalesce(login.customer_id, ident.customer_id) as customer_id,
        case
            when login.customer_id is not null then 'login'
            when ident.customer_id is not null then 'identity_map'
            else 'anonymous'
        end as attribution,
        rates.rate_to_eur
    from staged
    left join core.identity_map as login
        on login.identifier_type = 'customer_id' and login.identifier = staged.login_customer_id
    left join core.identity_map as ident
        on ident.identifier_type = staged.identifier_type and ident.identifier = staged.identifier
    left join rates on rates.currency = staged.currency
),

admitted as (
    insert into core.interactions (
        event_date, channel, event_key, customer_id, identifier_type, identifier, attribution, product_id,
        event_type, event_ts, quantity, revenue, session_key, store_id, is_late, source_table, _arrival_date,
        _source_file, _line_no
    )
    select
        %(event_date)s::date, channel, event_key, customer_id, identifier_type, identifier, attribution,
        product_id, event_type, event_ts, quantity, round(amount * rate_to_eur, 4), session_key, store_id,
        is_late, source_table, _arrival_date, _source_file, _line_no
    from resolved
    where copy_no = 1 and rate_to_eur is not null
    returning customer_id
),

rejected as (
    insert into quarantine.interactions
        (event_date, channel, event_key, reason, detail, source_table, _arrival_date, _source_file, _line_no)
    select
        %(event_date)s::date, channel, event_key,
        case when copy_no > 1 then 'duplicate_across_batches' else 'no_fx_rate' end,
        case when copy_no > 1 then 'copy ' || copy_no || ' of the event' else 'currency=' || currency end,
        source_table, _arrival_date, _source_file, _line_no
    from resolved
    where copy_no > 1 or rate_to_eur is null
    returning 1
)

select
    (select count(*) from resolved)::integer as rows_staged,
    (select count(*) from admitted)::integer as rows_built,
    (select count(*) from rejected)::integer as rows_quarantined,
    (select count(distinct customer_id) from admitted)::integer as customers,
    (select count(*) from admitted where customer_id is null)::integer as anonymous_rows
