-- interactions_window: attributed interactions of a date range, for training and evaluation.
-- Grain: one row per event of a known customer. Event dates whose quality gate failed are never read.
-- Parameters: start_date, end_date (inclusive).
select
    customer_id,
    product_id,
    channel,
    event_type,
    event_date,
    extract(epoch from event_ts)::bigint as event_epoch,
    coalesce(session_key, customer_id || ':' || event_date) as basket
from core.interactions
where event_date between %(start_date)s and %(end_date)s
    and customer_id is not null
    and event_date not in (select business_date from ops.quality_status where not passed)
