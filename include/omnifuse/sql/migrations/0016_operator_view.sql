-- The operator's view (issue 14) charts two things the BI role cannot read directly: the bootstrap intervals of
-- the holdout metrics (ml.model_metrics) and the load volumes per channel and day (ops.load_audit). Like 0012, they
-- are published as security-definer functions returning only what the view shows; plain SQL string bodies,
-- search_path pinned, revoked from PUBLIC (warehouse.ensure_bi_role grants the BI role every mart function).

create function mart.model_metric_intervals(p_metric text, p_k integer)
returns table (run_id text, model_name text, value double precision, ci_low double precision,
               ci_high double precision, customers integer)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select m.run_id, m.model_name, m.value, m.ci_low, m.ci_high, m.customers
    from ml.model_metrics as m
    where m.slice = 'holdout' and m.metric = p_metric and m.k = p_k
$$;
comment on function mart.model_metric_intervals(text, integer) is
    'Holdout value and 90 % bootstrap interval over customers of one metric@k for every run and model '
    '(joins mart.model_performance on run_id, model_name).';

create function mart.load_volume_daily(p_days integer)
returns table (business_date date, channel text, files integer, lines_read bigint, rows_staged bigint,
               rows_quarantined bigint, duplicates_dropped bigint)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select a.business_date, a.channel, a.files, a.lines_read, a.rows_staged, a.rows_quarantined,
           a.duplicates_dropped
    from ops.load_audit as a
    where a.business_date > (select max(business_date) from ops.load_audit) - p_days
    order by a.business_date, a.channel
$$;
comment on function mart.load_volume_daily(integer) is
    'Per channel and business date of the last p_days loaded: files, lines read, rows staged, quarantined and '
    'duplicates dropped (ops.load_audit, without the reasons and notes).';

revoke execute on function mart.model_metric_intervals(text, integer) from public;
revoke execute on function mart.load_volume_daily(integer) from public;
