-- The dashboard's freshness panel reads core.interactions through the usable-dates definition, like every other
-- reader: a date blocked by its gates is neither counted nor shown as the latest.
create or replace function mart.pipeline_freshness()
returns table (stage text, updated_at timestamptz, row_count bigint, latest_date date)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select 'staging (loads)'::text, max(loaded_at), sum(rows_staged)::bigint, max(business_date)
    from ops.load_audit
    union all
    select 'core.interactions', max(b.built_at), (select count(*) from core.usable_interactions), max(b.event_date)
    from core.interaction_builds as b
    where b.event_date in (select event_date from core.usable_dates)
    union all
    select 'ml.model_registry', max(created_at), count(*), max(business_date) from ml.model_registry
    union all
    select 'mart.customer_recommendations', max(published_at),
           (select count(*) from mart.customer_recommendations), max(business_date)
    from mart.publish_log where table_name = 'mart.customer_recommendations'
$$;
comment on function mart.pipeline_freshness() is
    'When each stage last wrote and how many rows its table holds (the freshness panel of the omnifuse view); '
    'core.interactions counts usable dates only (core.usable_dates).';
revoke execute on function mart.pipeline_freshness() from public;
