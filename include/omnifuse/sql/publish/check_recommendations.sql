-- check_recommendations: output checks on the next recommendations table, before it is swapped in.
-- Returns one row per check with the number of violations (all must be 0). Parameters: top_k.
-- Every known customer (core.customers) must have a list, personalised or a labelled fallback.
with

recs as (
    select * from {next}
),

per_customer as (
    select customer_id, count(*) as n, count(distinct product_id) as products, min(rank) as lo, max(rank) as hi
    from recs
    group by customer_id
),

ordered as (
    select score, lag(score) over (partition by customer_id order by rank) as better_score
    from recs
)

select 'more than top_k rows for a customer' as check_name, count(*) as violations
from per_customer where n > %(top_k)s
union all
select 'duplicate product for a customer', count(*) from per_customer where products <> n
union all
select 'ranks not 1..n without gaps', count(*) from per_customer where lo <> 1 or hi <> n
union all
select 'score increases with rank', count(*) from ordered where score > better_score + 1e-9
union all
select 'product not in the catalog', count(*)
from recs where not exists (select 1 from core.products as p where p.product_id = recs.product_id)
union all
select 'product out of stock', count(*)
from recs join core.products as p using (product_id) where p.stock <= 0
union all
select 'no recommendations at all', (select case when count(*) = 0 then 1 else 0 end from recs)
union all
select 'known customer without recommendations', count(*)
from core.customers as c where not exists (select 1 from recs where recs.customer_id = c.customer_id)
union all
select 'fallback without a reason naming its source', count(*)
from recs where source <> 'personalised' and (reason = '' or contributing_models <> '{{}}')
