-- coverage: how many known customers (core.customers) the next recommendations table serves personalised
-- lists and fallback lists (one index probe per known customer). One row. {next}: the recommendations built.
with

served as (
    select
        c.customer_id,
        exists (
            select 1 from {next} as r where r.customer_id = c.customer_id and r.rank = 1
                and r.source = 'personalised'
        ) as personalised,
        exists (select 1 from {next} as r where r.customer_id = c.customer_id and r.rank = 1) as listed
    from core.customers as c
),

final as (
    select
        count(*) as customers_known,
        count(*) filter (where personalised) as personalised,
        count(*) filter (where listed and not personalised) as fallback
    from served
)

select * from final
