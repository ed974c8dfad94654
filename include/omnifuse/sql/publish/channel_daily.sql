-- channel_daily: per channel and event day, up to the business date. Grain: (event_date, channel).
-- A session is a web/app session or a store receipt; a social interaction counts as its own session.
insert into {next} (event_date, channel, customers, sessions, events, orders, revenue, conversion)
with

events as (
    select event_date, channel, customer_id, event_type, revenue,
           coalesce(session_key, channel || ':' || event_key) as session
    from core.interactions
    where event_date <= %(business_date)s
),

sessions as (
    select event_date, channel, session, bool_or(event_type = 'purchase') as ordered
    from events
    group by event_date, channel, session
),

session_counts as (
    select event_date, channel, count(*) as sessions, count(*) filter (where ordered) as orders
    from sessions
    group by event_date, channel
),

event_counts as (
    select event_date, channel, count(distinct customer_id) as customers, count(*) as events,
           sum(revenue) as revenue
    from events
    group by event_date, channel
)

select
    e.event_date, e.channel, e.customers, s.sessions, e.events, s.orders, round(e.revenue, 2),
    s.orders::double precision / nullif(s.sessions, 0)
from event_counts as e
join session_counts as s using (event_date, channel)
