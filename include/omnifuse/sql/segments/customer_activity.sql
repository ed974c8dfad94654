-- customer_activity: recency, frequency, monetary value (net of returns) and channel mix of each customer
-- over the 90 days up to the business date, usable dates only. Grain: one row per customer_id.
-- Parameters: business_date.
select
    customer_id,
    (%(business_date)s::date - max(event_date)) as recency_days,
    count(distinct coalesce(session_key, channel || ':' || event_key))
        filter (where event_type <> 'return') as frequency,
    coalesce(sum(revenue), 0) as monetary,
    avg((channel = 'web')::int) as web_share,
    avg((channel = 'mobile')::int) as mobile_share,
    avg((channel = 'social')::int) as social_share,
    avg((channel = 'store')::int) as store_share
from core.usable_interactions
where customer_id is not null
    and event_date between %(business_date)s::date - 90 and %(business_date)s
group by customer_id
order by customer_id
