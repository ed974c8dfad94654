-- data_quality: checks per table and business date (latest gate run), last N days, with a verdict:
-- block (a blocking expectation failed: the date is not usable), warn (only warnings failed), pass.
-- Grain: (business_date, table_name). Parameters: days.
with

quality as (
    select business_date, table_name, checks, passed, failed_error, failed_warn, usable
    from mart.data_quality_daily
    where business_date > (select max(business_date) from mart.data_quality_daily) - %(days)s::int
),

final as (
    select
        *,
        case when failed_error > 0 then 'block' when failed_warn > 0 then 'warn' else 'pass' end as status
    from quality
)

select * from final
order by business_date desc, table_name
