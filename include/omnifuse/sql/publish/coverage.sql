-- coverage: how many known customers (core.customers) the next recommendations table serves personalised
-- lists and fallback lists. One row. {next}: the recommendations being built.
with

served as (
    select customer_id, bool_or(source = 'personalised') as personalised
    from {next}
    group by customer_id
),

final as (
    select
        count(*) as customers_known,
        count(*) filter (where s.personalised) as personalised,
        count(*) filter (where not s.personalised) as fallback
    from core.customers as c
    left join served as s using (customer_id)
)

select * from final
