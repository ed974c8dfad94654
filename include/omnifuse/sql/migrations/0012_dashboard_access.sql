-- The omnifuse view in the Airflow UI reads the warehouse as the read-only BI role, which can read mart.* only.
-- What the view needs from other schemas is published here as two functions that run with their owner's rights
-- and return no more than the view shows: per-stage freshness, and one customer's recommendations with the
-- products' names. Bodies are plain SQL strings (no dependency on the tables, so later migrations stay free to
-- change them); search_path is pinned so a caller cannot shadow a table.

create function mart.pipeline_freshness()
returns table (stage text, updated_at timestamptz, row_count bigint, latest_date date)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select 'staging (loads)'::text, max(loaded_at), sum(rows_staged)::bigint, max(business_date)
    from ops.load_audit
    union all
    select 'core.interactions', max(built_at), (select count(*) from core.interactions), max(event_date)
    from core.interaction_builds
    union all
    select 'ml.model_registry', max(created_at), count(*), max(business_date) from ml.model_registry
    union all
    select 'mart.customer_recommendations', max(published_at),
           (select count(*) from mart.customer_recommendations), max(business_date)
    from mart.publish_log where table_name = 'mart.customer_recommendations'
$$;
comment on function mart.pipeline_freshness() is
    'When each stage last wrote and how many rows its table holds (the freshness panel of the omnifuse view).';

create function mart.customer_recommendation_details(p_customer_id text)
returns table (rank integer, product_id text, name text, category text, price numeric, score numeric,
               reason text, contributing_models text[], model_version text, business_date date)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select r.rank, r.product_id, p.name, p.category, p.price::numeric, round(r.score::numeric, 4), r.reason,
           r.contributing_models, r.model_version, r.business_date
    from mart.customer_recommendations as r
    left join core.products as p on p.product_id = r.product_id
    where r.customer_id = p_customer_id
    order by r.rank
$$;
comment on function mart.customer_recommendation_details(text) is
    'One customer''s published recommendations with product name, category and price, best first.';

-- only the BI role (granted in warehouse.ensure_bi_role, whatever its configured name) may call them
revoke execute on function mart.pipeline_freshness() from public;
revoke execute on function mart.customer_recommendation_details(text) from public;
