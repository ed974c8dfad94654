-- Data-quality results (Great Expectations gates) and their BI view.
create table ops.dq_results (
    run_id text not null,
    gate text not null,
    business_date date not null,
    table_name text not null,
    expectation text not null,
    severity text not null check (severity in ('error', 'warn')),
    success boolean not null,
    observed_value text,
    unexpected_count bigint,
    unexpected_percent double precision,
    sample jsonb,
    error text,
    data_docs text,
    checked_at timestamptz not null
);
create index dq_results_date on ops.dq_results (business_date, gate);
comment on table ops.dq_results is
    'Every expectation result of every quality gate run (grain: run_id, gate, business_date, table_name, '
    'expectation). severity error blocks the date downstream; warn is recorded only. sample holds a few '
    'offending rows or values.';

create view ops.quality_status as
with latest as (
    select distinct on (gate, business_date) gate, business_date, run_id, checked_at
    from ops.dq_results
    order by gate, business_date, checked_at desc
)
select
    latest.gate,
    latest.business_date,
    latest.run_id,
    latest.checked_at,
    bool_and(r.success or r.severity = 'warn') as passed
from latest
join ops.dq_results as r using (gate, business_date, run_id)
group by latest.gate, latest.business_date, latest.run_id, latest.checked_at;
comment on view ops.quality_status is
    'Latest verdict per gate and business date: passed is false when a blocking (error) expectation failed. '
    'Retraining and publishing only read dates whose gates all passed.';

create view mart.data_quality_daily as
with latest as (
    select distinct on (gate, business_date) gate, business_date, run_id
    from ops.dq_results
    order by gate, business_date, checked_at desc
)
select
    r.business_date,
    r.table_name,
    count(*) as checks,
    count(*) filter (where r.success) as passed,
    count(*) filter (where not r.success and r.severity = 'error') as failed_error,
    count(*) filter (where not r.success and r.severity = 'warn') as failed_warn,
    bool_and(r.success or r.severity = 'warn') as usable,
    max(r.checked_at) as checked_at
from latest
join ops.dq_results as r using (gate, business_date, run_id)
group by r.business_date, r.table_name;
comment on view mart.data_quality_daily is
    'Data quality per business date and table (latest gate run): checks, passed, blocking and warning '
    'failures; usable = no blocking failure.';
