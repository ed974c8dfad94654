-- model_performance: every model's holdout metrics per retraining day. Grain: (run_id, model_name, metric, k).
insert into {next} (business_date, run_id, model_name, metric, k, value, is_champion)
select
    r.business_date, m.run_id, m.model_name, m.metric, m.k, m.value,
    exists (
        select 1 from ml.model_registry as reg where reg.run_id = m.run_id and reg.status = 'champion'
    ) as is_champion
from ml.model_metrics as m
join ml.training_runs as r using (run_id)
where m.slice = 'holdout' and r.business_date <= %(business_date)s
