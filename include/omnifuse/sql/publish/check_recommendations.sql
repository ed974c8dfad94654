-- check_recommendations: output checks on the next recommendations table, before it is swapped in.
-- Returns one row per check with the number of violations (all must be 0). Parameters: top_k.
-- Every known customer (core.customers) must have a list, personalised or a labelled fallback.
-- One ordered pass over the table (its primary key is built by then) plus one hash pass for duplicates.
with

ordered as (
    select
        r.customer_id, r.rank, r.score, r.source, r.reason, r.contributing_models,
        lag(r.score) over per_customer as better_score,
        row_number() over per_customer as position,
        p.product_id is null as unknown_product,
        coalesce(p.stock, 0) <= 0 as out_of_stock
    from {next} as r
    left join core.products as p using (product_id)
    window per_customer as (partition by r.customer_id order by r.rank)
),

row_checks as (
    select
        count(*) filter (where position > %(top_k)s) as over_top_k,
        count(*) filter (where rank <> position) as rank_gaps,
        count(*) filter (where score > better_score + 1e-9) as score_increases,
        count(*) filter (where unknown_product) as unknown_products,
        count(*) filter (where out_of_stock and not unknown_product) as out_of_stock,
        count(*) filter (where source <> 'personalised' and (reason = '' or contributing_models <> '{{}}'))
            as unlabelled_fallbacks,
        count(*) as total
    from ordered
),

duplicates as (
    select count(*) as n
    from (select customer_id, product_id from {next} group by customer_id, product_id having count(*) > 1) as d
),

uncovered as (
    select count(*) as n
    from core.customers as c
    where not exists (select 1 from {next} as r where r.customer_id = c.customer_id and r.rank = 1)
)

select 'more than top_k rows for a customer' as check_name, over_top_k as violations from row_checks
union all
select 'duplicate product for a customer', n from duplicates
union all
select 'ranks not 1..n without gaps', rank_gaps from row_checks
union all
select 'score increases with rank', score_increases from row_checks
union all
select 'product not in the catalog', unknown_products from row_checks
union all
select 'product out of stock', out_of_stock from row_checks
union all
select 'no recommendations at all', case when total = 0 then 1 else 0 end from row_checks
union all
select 'known customer without recommendations', n from uncovered
union all
select 'fallback without a reason naming its source', unlabelled_fallbacks from row_checks
