-- publish_coverage: per business date, the latest publish of mart.customer_recommendations: which model version,
-- how many rows, the share of known customers with a personalised list and with a fallback, live or history only.
-- Grain: business_date. Parameters: days.
with

publishes as (
    select
        business_date, published_at, model_version, rows_published, customers_known, personalised_share,
        fallback_share, live
    from mart.publish_log
    where table_name = 'mart.customer_recommendations'
        and business_date > (select max(business_date) from mart.publish_log) - %(days)s::int
),

final as (
    select distinct on (business_date) *
    from publishes
    order by business_date, published_at desc
)

select * from final
order by business_date
