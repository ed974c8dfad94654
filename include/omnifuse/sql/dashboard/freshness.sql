-- freshness: when each stage last wrote and how many rows its table holds (as the BI role: see 0012 migration).
select stage, updated_at, row_count, latest_date
from mart.pipeline_freshness()
