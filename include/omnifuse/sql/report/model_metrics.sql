-- model_metrics: holdout NDCG@10 (with its 90-percent bootstrap interval over customers), Recall@20 and
-- coverage@20 of every model of the date's latest retraining run. Grain: one row per model. Parameters: business_date.
select
    m.model_name,
    max(m.value) filter (where m.metric = 'ndcg' and m.k = 10) as ndcg10,
    max(m.ci_low) filter (where m.metric = 'ndcg' and m.k = 10) as ndcg10_low,
    max(m.ci_high) filter (where m.metric = 'ndcg' and m.k = 10) as ndcg10_high,
    max(m.value) filter (where m.metric = 'recall' and m.k = 20) as recall20,
    max(m.value) filter (where m.metric = 'coverage' and m.k = 20) as coverage20
from ml.model_metrics as m
join ml.training_runs as r using (run_id)
where r.business_date = %(business_date)s and m.slice = 'holdout'
    -- the date's latest daily run (a re-run writes version 2, 3, ...; experiments carry a tag)
    and r.tag is null
    and r.version = (
        select max(v.version) from ml.training_runs as v where v.business_date = r.business_date and v.tag is null)
group by m.model_name
order by ndcg10 desc
