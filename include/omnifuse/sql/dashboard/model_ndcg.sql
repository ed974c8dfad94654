-- model_ndcg: NDCG@10 on the holdout of every model and fusion variant per retraining day, with its 90-percent
-- bootstrap interval over customers (mart.model_metric_intervals, migration 0016), last N days.
-- Grain: (business_date, model_name). Parameters: days.
with

performance as (
    select business_date, run_id, model_name, value, is_champion
    from mart.model_performance
    where metric = 'ndcg' and k = 10
        and business_date > (select max(business_date) from mart.model_performance) - %(days)s::int
),

-- the latest daily run of each date: a re-run is retrain_<date>_v2, _v3, ...; tagged experiments are left out
daily_runs as (
    select distinct on (business_date) business_date, run_id
    from performance
    where run_id ~ '^retrain_[0-9]{8}(_v[0-9]+)?$'
    order by business_date, coalesce(substring(run_id from '_v([0-9]+)$')::int, 1) desc
),

intervals as (
    select run_id, model_name, ci_low, ci_high, customers
    from mart.model_metric_intervals('ndcg', 10)
),

final as (
    select
        p.business_date, p.model_name, p.value as ndcg10, i.ci_low, i.ci_high, i.customers, p.is_champion,
        p.run_id
    from performance as p
    join daily_runs as d using (business_date, run_id)
    left join intervals as i using (run_id, model_name)
)

select * from final
order by business_date, model_name
