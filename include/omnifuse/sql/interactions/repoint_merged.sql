-- repoint_merged: history older than the rebuild window still carries a CRM id that has since been merged
-- into another (two CRM records found to be one person). Point it at the canonical id, so nothing is
-- counted under two customers. Parameters: before_date (the first event date the run rebuilds).
update core.interactions as i
set customer_id = m.customer_id
from core.identity_map as m
where m.identifier_type = 'customer_id'
    and m.customer_id is not null
    and m.identifier <> m.customer_id
    and i.customer_id = m.identifier
    and i.event_date < %(before_date)s
