-- identity_crm: the CRM's statements about each customer id (current snapshot).
-- Grain: one row per CRM customer id.
select
    customer_id,
    email_sha256,
    phone_sha256,
    loyalty_card,
    social_handles,
    snapshot_date
from core.customers
