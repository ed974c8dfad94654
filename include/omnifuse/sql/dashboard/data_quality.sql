-- data_quality: pass/fail per table and business date, last N days. Parameters: days.
select business_date, table_name, checks, passed, failed_error, failed_warn, usable
from mart.data_quality_daily
where business_date > (select max(business_date) from mart.data_quality_daily) - %(days)s::int
order by business_date desc, table_name
