-- model_ndcg: NDCG@10 of every model and fusion variant per retraining day, last N days. Parameters: days.
select business_date, model_name, value as ndcg10, is_champion
from mart.model_performance
where metric = 'ndcg' and k = 10
    and business_date > (select max(business_date) from mart.model_performance) - %(days)s::int
    -- the latest daily run of each date: a re-run is retrain_<date>_v2, _v3, ...; tagged experiments are left out
    and run_id = (
        select p.run_id from mart.model_performance as p
        where p.business_date = model_performance.business_date and p.run_id ~ '^retrain_[0-9]{8}(_v[0-9]+)?$'
        order by coalesce(substring(p.run_id from '_v([0-9]+)$')::int, 1) desc
        limit 1)
order by business_date, model_name
