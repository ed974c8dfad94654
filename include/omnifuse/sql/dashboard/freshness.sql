-- freshness: when each stage last wrote and how many rows its table holds.
select 'staging (loads)' as stage, max(loaded_at) as updated_at, sum(rows_staged)::bigint as row_count,
       max(business_date) as latest_date
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
