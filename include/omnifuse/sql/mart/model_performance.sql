-- model_performance: every model's holdout metrics per retraining day, with a base model's tuned
-- hyper-parameters (ml.tuning_trials). Grain: (run_id, model_name, metric, k).
with tuning as (
    select
        run_id,
        model_name,
        (array_agg(params) filter (where chosen))[1] as params,
        max(valid_ndcg) filter (where chosen) as valid_ndcg,
        count(*) filter (where status = 'run') as trials_run,
        count(*) filter (where status = 'skipped_budget') as trials_skipped
    from ml.tuning_trials
    group by run_id, model_name
)

insert into {next} (
    business_date, run_id, model_name, metric, k, value, is_champion, params, valid_ndcg, trials_run, trials_skipped
)
select
    r.business_date, m.run_id, m.model_name, m.metric, m.k, m.value,
    exists (
        select 1 from ml.model_registry as reg where reg.run_id = m.run_id and reg.status = 'champion'
    ) as is_champion,
    tuning.params, tuning.valid_ndcg, tuning.trials_run, tuning.trials_skipped
from ml.model_metrics as m
join ml.training_runs as r using (run_id)
left join tuning using (run_id, model_name)
where m.slice = 'holdout' and r.business_date <= %(business_date)s
