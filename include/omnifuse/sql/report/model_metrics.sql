-- model_metrics: holdout NDCG@10, Recall@20 and coverage@20 of every model of the date's retraining run.
-- Grain: one row per model. Parameters: business_date.
select
    m.model_name,
    max(m.value) filter (where m.metric = 'ndcg' and m.k = 10) as ndcg10,
    max(m.value) filter (where m.metric = 'recall' and m.k = 20) as recall20,
    max(m.value) filter (where m.metric = 'coverage' and m.k = 20) as coverage20
from ml.model_metrics as m
join ml.training_runs as r using (run_id)
where r.business_date = %(business_date)s and m.slice = 'holdout' and r.run_id = 'retrain_' || to_char(r.business_date, 'YYYYMMDD')
group by m.model_name
order by ndcg10 desc
