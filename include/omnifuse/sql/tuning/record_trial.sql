-- One hyper-parameter trial of a base model on the validation slice. Grain: (run_id, model_name, trial).
insert into ml.tuning_trials (run_id, model_name, trial, params, valid_ndcg, fit_seconds, chosen, status)
values (
    %(run_id)s, %(model_name)s, %(trial)s, %(params)s::jsonb, %(valid_ndcg)s, %(fit_seconds)s, %(chosen)s,
    %(status)s
)
