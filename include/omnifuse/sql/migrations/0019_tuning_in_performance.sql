-- Tuning that says what it did (issue 12): a trial the time budget left out is recorded as skipped instead of
-- vanishing, so a run whose choice depended on the machine's speed says so; and the chosen hyper-parameters with
-- their validation score reach BI in mart.model_performance.

alter table ml.tuning_trials
    add column status text not null default 'run',
    alter column valid_ndcg drop not null,
    alter column fit_seconds drop not null;
alter table ml.tuning_trials
    add constraint tuning_trials_status check (status in ('run', 'skipped_budget')),
    add constraint tuning_trials_scored check ((status = 'run') = (valid_ndcg is not null and fit_seconds is not null));
comment on column ml.tuning_trials.status is
    'run: fitted and scored on the validation slice; skipped_budget: not started because the time spent plus the '
    'slowest trial so far would have passed the model''s share of OMNIFUSE_TUNING_BUDGET_S (the choice then '
    'depends on the machine''s speed: raise the budget to make it depend on the data alone).';

alter table mart.model_performance
    add column params jsonb,
    add column valid_ndcg double precision,
    add column trials_run integer,
    add column trials_skipped integer;
comment on column mart.model_performance.params is
    'A base model''s hyper-parameters chosen on the validation slice (ml.tuning_trials); null for fusion variants.';
comment on column mart.model_performance.valid_ndcg is 'NDCG@10 of the chosen parameters on the validation slice.';
comment on column mart.model_performance.trials_run is 'Hyper-parameter settings tried on the validation slice.';
comment on column mart.model_performance.trials_skipped is
    'Settings of the grid the time budget left untried (0: the choice depends on the data and the seed alone).';
