-- model_ndcg: NDCG@10 of every model and fusion variant per retraining day, last N days. Parameters: days.
select business_date, model_name, value as ndcg10, is_champion
from mart.model_performance
where metric = 'ndcg' and k = 10
    and business_date > (select max(business_date) from mart.model_performance) - %(days)s::int
    and run_id = 'retrain_' || to_char(business_date, 'YYYYMMDD')
order by business_date, model_name
