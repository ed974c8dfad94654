-- fallback_recommendations: a labelled list for every known customer (core.customers) the champion did not
-- personalise (no usable history in its window). Favourites, in this order of preference, filling up to top_k:
-- the customer's segment, their main channel, their home store, then all customers. A favourite is ranked by
-- distinct buyers, then distinct interested customers (sessions for anonymous traffic), over the 90 days up to
-- the business date (usable dates only); in stock, not already bought unless repeatable, at most
-- max_per_category per category. Grain: one row per (customer_id, rank); score = 1 / rank.
-- Parameters: business_date, model_version, top_k, max_per_category, recommend_repeats
-- (OMNIFUSE_RECOMMEND_REPEATS: a bought product may come back when the catalog says it is repeatable).
-- {next}: the recommendations being built (personalised rows and primary key already in), {segments}: the
-- segments being built.
insert into {next} (business_date, customer_id, rank, product_id, score, reason, contributing_models, model_version,
                    source, evidence_product_id)
with

uncovered as (
    select
        k.customer_id, k.home_store_id, s.segment,
        case greatest(s.web_share, s.mobile_share, s.social_share, s.store_share)
            when s.web_share then 'web'
            when s.mobile_share then 'mobile'
            when s.social_share then 'social'
            when s.store_share then 'store'
        end as channel
    from core.customers as k
    left join {segments} as s using (customer_id)
    where not exists (select 1 from {next} as r where r.customer_id = k.customer_id and r.rank = 1)
),

events as (
    select
        i.customer_id, i.product_id, i.channel, i.store_id, i.event_type,
        coalesce(i.customer_id, i.session_key, i.channel || ':' || i.event_key) as who
    from core.usable_interactions as i
    join core.products as p using (product_id)
    where i.event_date between %(business_date)s::date - 90 and %(business_date)s
        and i.event_type <> 'return' and p.stock > 0
),

counted as (
    select 'segment' as kind, s.segment as key, e.product_id,
           count(distinct e.who) filter (where e.event_type = 'purchase') as buyers, count(distinct e.who) as fans
    from events as e
    join {segments} as s using (customer_id)
    group by s.segment, e.product_id
    union all
    select 'channel', e.channel, e.product_id,
           count(distinct e.who) filter (where e.event_type = 'purchase'), count(distinct e.who)
    from events as e
    group by e.channel, e.product_id
    union all
    select 'store', e.store_id, e.product_id,
           count(distinct e.who) filter (where e.event_type = 'purchase'), count(distinct e.who)
    from events as e
    where e.store_id is not null
    group by e.store_id, e.product_id
    union all
    select 'popular', '', e.product_id,
           count(distinct e.who) filter (where e.event_type = 'purchase'), count(distinct e.who)
    from events as e
    group by e.product_id
),

favourites as (
    select *
    from (
        select kind, key, product_id,
               row_number() over (partition by kind, key order by buyers desc, fans desc, product_id) as pos
        from counted
    ) as ranked
    where pos <= 3 * %(top_k)s
),

candidates as (
    select u.customer_id, f.product_id, f.pos, 1 as priority, 'fallback_segment' as source,
           'popular in your segment (' || u.segment || ')' as reason
    from uncovered as u
    join favourites as f on f.kind = 'segment' and f.key = u.segment
    union all
    select u.customer_id, f.product_id, f.pos, 2, 'fallback_channel', 'popular with ' || u.channel || ' customers'
    from uncovered as u
    join favourites as f on f.kind = 'channel' and f.key = u.channel
    union all
    select u.customer_id, f.product_id, f.pos, 3, 'fallback_store', 'best seller at your store (' || st.city || ')'
    from uncovered as u
    join core.stores as st on st.store_id = u.home_store_id
    join favourites as f on f.kind = 'store' and f.key = u.home_store_id
    union all
    select u.customer_id, f.product_id, f.pos, 4, 'fallback_popular', 'popular right now'
    from uncovered as u
    cross join favourites as f
    where f.kind = 'popular'
),

bought as (
    select distinct e.customer_id, e.product_id
    from events as e
    join uncovered as u using (customer_id)
    join core.products as p using (product_id)
    where e.event_type = 'purchase' and not (p.repeatable and %(recommend_repeats)s)
),

allowed as (
    select c.*, p.category,
           row_number() over (partition by c.customer_id, c.product_id order by c.priority, c.pos) as copy
    from candidates as c
    join core.products as p using (product_id)
    -- a hashed NOT IN: with the views' poor estimates, NOT EXISTS became a nested loop over every candidate
    where (c.customer_id, c.product_id) not in (select b.customer_id, b.product_id from bought as b)
),

capped as (
    select *, row_number() over (partition by customer_id, category order by priority, pos) as in_category
    from allowed
    where copy = 1
),

final as (
    select customer_id, product_id, source, reason,
           row_number() over (partition by customer_id order by priority, pos) as rank
    from capped
    where in_category <= %(max_per_category)s
)

select %(business_date)s::date, customer_id, rank, product_id, 1.0 / rank, reason, '{{}}'::text[], %(model_version)s,
       source, null
from final
where rank <= %(top_k)s
