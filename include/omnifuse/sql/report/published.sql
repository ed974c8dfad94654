-- published: the latest publish of each mart table for a business date. Parameters: business_date.
select distinct on (table_name) table_name, rows_published, round(swap_lock_ms::numeric, 1) as swap_lock_ms
from mart.publish_log
where business_date = %(business_date)s
order by table_name, published_at desc
