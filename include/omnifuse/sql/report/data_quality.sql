-- data_quality: the latest gate results of a business date per table. Parameters: business_date.
select table_name, checks, passed, failed_error, failed_warn
from mart.data_quality_daily
where business_date = %(business_date)s
order by table_name
