-- Failure alerts written by every omnifuse task's failure callback.
create table ops.alerts (
    alert_id bigint generated always as identity primary key,
    dag_id text not null,
    task_id text not null,
    run_id text not null,
    try_number integer,
    business_date date,
    error text not null,
    hint text not null,
    log_url text,
    created_at timestamptz not null default now()
);
create index alerts_created on ops.alerts (created_at desc);
comment on table ops.alerts is
    'One row per failed task try (written by the DAGs'' on_failure_callback): what failed, the error, what to do.';
