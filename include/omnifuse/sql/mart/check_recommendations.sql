-- check_recommendations: output checks on the next recommendations table, before it is swapped in.
-- Returns one row per check with the number of violations (all must be 0). Parameters: top_k.
-- Every known customer (core.customers) must have a list, personalised or a labelled fallback.
-- One ordered pass over the primary key (customer_id, rank), built by then, so a rank is unique per customer:
-- per customer, ranks run 1..n when the first is 1 and the last is n; duplicates are rows beyond the distinct
-- products. The catalog checks join the few distinct products, not every row (20 M rows took 60 s with a hash
-- of every (customer, product) pair spilling to disk; this takes a third of that).
with

ordered as (
    select
        r.customer_id, r.rank, r.product_id, r.score, r.source, r.reason, r.contributing_models,
        lag(r.score) over (partition by r.customer_id order by r.rank) as better_score
    from {next} as r
),

per_customer as (
    select
        count(*) as n,
        min(rank) as first_rank,
        max(rank) as last_rank,
        count(*) - count(distinct product_id) as duplicate_products,
        count(*) filter (where score > better_score + 1e-9) as score_increases,
        count(*) filter (where source <> 'personalised' and (reason = '' or contributing_models <> '{{}}'))
            as unlabelled_fallbacks
    from ordered
    group by customer_id
),

customer_checks as (
    select
        coalesce(sum(greatest(n - %(top_k)s, 0)), 0) as over_top_k,
        coalesce(sum(duplicate_products), 0) as duplicates,
        count(*) filter (where first_rank <> 1 or last_rank <> n) as rank_gaps,
        coalesce(sum(score_increases), 0) as score_increases,
        coalesce(sum(unlabelled_fallbacks), 0) as unlabelled_fallbacks,
        coalesce(sum(n), 0) as total
    from per_customer
),

products as (
    select product_id, count(*) as n
    from {next}
    group by product_id
),

catalog_checks as (
    select
        coalesce(sum(r.n) filter (where p.product_id is null), 0) as unknown_products,
        coalesce(sum(r.n) filter (where p.product_id is not null and coalesce(p.stock, 0) <= 0), 0) as out_of_stock
    from products as r
    left join core.products as p using (product_id)
),

uncovered as (
    select count(*) as n
    from core.customers as c
    where not exists (select 1 from {next} as r where r.customer_id = c.customer_id and r.rank = 1)
)

select 'more than top_k rows for a customer' as check_name, over_top_k as violations from customer_checks
union all
select 'duplicate product for a customer', duplicates from customer_checks
union all
select 'ranks not 1..n without gaps (customers)', rank_gaps from customer_checks
union all
select 'score increases with rank', score_increases from customer_checks
union all
select 'product not in the catalog', unknown_products from catalog_checks
union all
select 'product out of stock', out_of_stock from catalog_checks
union all
select 'no recommendations at all', case when total = 0 then 1 else 0 end from customer_checks
union all
select 'known customer without recommendations', n from uncovered
union all
select 'fallback without a reason naming its source', unlabelled_fallbacks from customer_checks
