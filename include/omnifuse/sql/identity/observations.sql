-- identity_observations: the identifiers seen in one arrival date's staged events.
-- Grain of the output: one row per (identifier_type, identifier, login_customer_id) for the date.
-- A logged-in web or mobile event is the evidence that links a cookie or device to a customer id.
-- Parameters: business_date (the arrival date whose staged rows it reads; kept as evidence_date). The caller has
-- deleted the date's rows first (idempotent per date).
with

-- a web event carries a cookie, an app event a device; either may carry the logged-in customer id
events as (
    select 'cookie_id' as identifier_type, cookie_id as identifier, customer_id, event_ts
    from staging.web_events
    where _arrival_date = %(business_date)s
    union all
    select 'device_id', device_id, customer_id, event_ts
    from staging.mobile_events
    where _arrival_date = %(business_date)s
),

seen as (
    select identifier_type, identifier, customer_id as login_customer_id, event_ts
    from events where identifier is not null
    union all
    select 'customer_id', customer_id, customer_id, event_ts
    from events where customer_id is not null
    union all
    select 'social_handle', handle, null, event_ts
    from staging.social_interactions where _arrival_date = %(business_date)s
    union all
    select 'loyalty_card', loyalty_card, null, event_ts
    from staging.store_sales where _arrival_date = %(business_date)s and loyalty_card is not null
),

final as (
    select
        %(business_date)s::date as evidence_date,
        identifier_type,
        identifier,
        login_customer_id,
        count(*)::integer as events,
        min(event_ts) as first_seen,
        max(event_ts) as last_seen
    from seen
    group by identifier_type, identifier, login_customer_id
)

insert into core.identity_observations
    (evidence_date, identifier_type, identifier, login_customer_id, events, first_seen, last_seen)
select * from final
