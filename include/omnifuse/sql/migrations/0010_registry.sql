-- Registry: a champion is never lost. Re-running a date writes a new version beside the old one; nothing
-- deletes a training run any more, and the registry no longer cascades from it.
alter table ml.model_registry drop constraint if exists model_registry_run_id_fkey;
alter table ml.model_registry
    add constraint model_registry_run_id_fkey foreign key (run_id) references ml.training_runs (run_id)
        on delete restrict;

alter table ml.training_runs
    add column tag text,
    add column version integer not null default 1,
    add column holdout_days integer,
    add column valid_days integer,
    add column holdout_customers integer,
    add column valid_customers integer;
comment on column ml.training_runs.version is
    'Attempt number for (business_date, tag): re-running a date writes version 2, 3, … (run_id suffix _v2, …).';
comment on column ml.training_runs.holdout_days is
    'Days in the holdout (split_date .. business_date), sized to reach OMNIFUSE_EVAL_CUSTOMERS labelled customers.';

alter table ml.model_metrics
    add column ci_low double precision,
    add column ci_high double precision,
    add column customers integer;
alter table ml.model_metrics drop constraint if exists model_metrics_slice_check;
alter table ml.model_metrics add constraint model_metrics_slice_check
    check (slice in ('holdout', 'validation', 'holdout_repeat'));
comment on column ml.model_metrics.ci_low is
    'Lower end of the 90 % bootstrap interval of the metric over customers (null for coverage).';
comment on column ml.model_metrics.slice is
    'holdout: new items (already-bought non-repeatable excluded), days from split_date; holdout_repeat: '
    're-purchases of products bought before split_date; validation: days before split_date (tuning, fusion).';

alter table ml.model_registry
    add column served_model text,
    add column evaluated_window daterange,
    add column served_window daterange,
    add column previous_champion text,
    add column forced boolean not null default false;
comment on column ml.model_registry.data_window is
    'Training range of the served fit: train_start .. business_date (refitted on the whole window).';
comment on column ml.model_registry.evaluated_window is
    'Training range of the evaluated fit (train_start .. split_date - 1), whose holdout metrics are stored.';
comment on column ml.model_registry.served_model is
    'What ranks: fusion_<variant>, or the best single model when fusion did not beat it beyond the noise.';
comment on column ml.model_registry.previous_champion is
    'The champion this version replaced when promoted (omnifuse model rollback restores it).';

create function ml.keep_champion() returns trigger language plpgsql as $$
begin
    if old.status = 'champion' then
        raise exception 'ml.model_registry: % is the champion and is never deleted; promote another version or '
            'run omnifuse model rollback first', old.model_version;
    end if;
    return old;
end
$$;
create trigger model_registry_keep_champion before delete on ml.model_registry
    for each row execute function ml.keep_champion();

create table ml.tuning_trials (
    run_id text not null references ml.training_runs (run_id),
    model_name text not null,
    trial integer not null,
    params jsonb not null,
    valid_ndcg double precision not null,
    fit_seconds double precision not null,
    chosen boolean not null,
    primary key (run_id, model_name, trial)
);
comment on table ml.tuning_trials is
    'Hyper-parameter search per run and base model on the validation slice (NDCG@10), within '
    'OMNIFUSE_TUNING_BUDGET_S; chosen marks the parameters used for the evaluated and the served fit.';
