-- interactions_window: attributed interactions of a date range, for training and evaluation.
-- Grain: one row per event of a known customer (returns included: event_type = 'return'; dataset.py turns
-- them into cancelled purchases, never a positive signal). Only usable dates are read (core.usable_interactions:
-- event dates that passed both gates). Ordered on a unique key so the same data always arrives in the same order.
-- Filters on: the event date (event_date, when the event happened; not the arrival date a line landed on).
-- Parameters: start_date, end_date (inclusive event dates).
with window_events as (
    select *
    from core.usable_interactions
    where event_date between %(start_date)s and %(end_date)s
        and customer_id is not null
),

final as (
    select
        customer_id,
        product_id,
        channel,
        event_type,
        event_date,
        extract(epoch from event_ts)::bigint as event_epoch,
        coalesce(session_key, customer_id || ':' || event_date) as basket,
        event_key
    from window_events
)

select customer_id, product_id, channel, event_type, event_date, event_epoch, basket
from final
order by customer_id, product_id, event_date, event_epoch, channel, event_key
