-- Retraining: runs, per-model metrics, fusion weights and the model registry.
create table ml.training_runs (
    run_id text primary key,
    business_date date not null,
    split_date date not null,
    valid_date date not null,
    train_start date not null,
    customers integer not null,
    products integer not null,
    train_events integer not null,
    eval_customers integer not null,
    seed integer not null,
    artifact_dir text not null,
    status text not null default 'running' check (status in ('running', 'done', 'failed')),
    started_at timestamptz not null default now(),
    finished_at timestamptz
);
comment on table ml.training_runs is
    'One row per retraining run: the data window (train_start .. split_date), the validation slice '
    '(valid_date .. split_date, before the holdout) and the holdout (split_date .. business_date).';

create table ml.model_metrics (
    run_id text not null references ml.training_runs on delete cascade,
    model_name text not null,
    metric text not null,
    k integer not null,
    value double precision not null,
    split_date date not null,
    slice text not null default 'holdout' check (slice in ('holdout', 'validation')),
    fit_seconds double precision,
    primary key (run_id, model_name, metric, k, slice)
);
comment on table ml.model_metrics is
    'Every model and fusion variant scored on the same time split: metric in (recall, ndcg, map, hitrate, '
    'coverage) at k in (10, 20). slice = holdout (days from split_date) or validation (days before it).';

create table ml.fusion_weights (
    run_id text not null references ml.training_runs on delete cascade,
    variant text not null,
    feature text not null,
    weight double precision not null,
    primary key (run_id, variant, feature)
);
comment on table ml.fusion_weights is 'Learned blend weights (and stacker feature importances) per run and variant.';

create table ml.model_registry (
    model_version text primary key,
    run_id text not null references ml.training_runs on delete cascade,
    business_date date not null,
    fusion_variant text not null,
    base_models text[] not null,
    data_window daterange not null,
    metrics jsonb not null,
    artifact_path text not null,
    status text not null check (status in ('champion', 'challenger', 'rejected', 'retired')),
    reason text not null,
    created_at timestamptz not null default now(),
    decided_at timestamptz
);
create unique index model_registry_one_champion on ml.model_registry (status) where status = 'champion';
comment on table ml.model_registry is
    'Every fused model version trained. Exactly one champion (what publishing serves); a challenger replaces '
    'it only when it beats the champion and the popularity baseline on the holdout by the configured margin. '
    'reason says why a version was promoted, kept back or rejected.';
