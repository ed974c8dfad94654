-- channel_daily: per channel and event day, up to the business date, usable dates only (both quality gates
-- passed). Grain: (event_date, channel). A session is a web/app session or a store receipt; a social
-- interaction counts as its own session. Returns carry negative revenue: gross sales count purchases,
-- returns the revenue given back, net revenue both.
insert into {next} (event_date, channel, customers, sessions, events, orders, revenue, conversion, gross_sales,
                    returns, net_revenue)
with

events as (
    select event_date, channel, customer_id, event_type, revenue,
           coalesce(session_key, channel || ':' || event_key) as session
    from core.usable_interactions
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
    select
        event_date, channel, count(distinct customer_id) as customers, count(*) as events,
        coalesce(sum(revenue) filter (where event_type = 'purchase'), 0) as gross_sales,
        coalesce(-sum(revenue) filter (where event_type = 'return'), 0) as returns
    from events
    group by event_date, channel
),

final as (
    select
        e.event_date, e.channel, e.customers, s.sessions, e.events, s.orders,
        round(e.gross_sales - e.returns, 2) as revenue,
        s.orders::double precision / nullif(s.sessions, 0) as conversion,
        round(e.gross_sales, 2) as gross_sales,
        round(e.returns, 2) as returns,
        round(e.gross_sales - e.returns, 2) as net_revenue
    from event_counts as e
    join session_counts as s using (event_date, channel)
)

select * from final
