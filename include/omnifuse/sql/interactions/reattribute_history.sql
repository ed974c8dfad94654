-- reattribute_history: every partition outside the rebuild window (older history, and newer dates when
-- dates are loaded out of order) follows the current identity map, so that the
-- tables do not depend on the order dates were loaded in (a backfill out of order, or in parallel, gives what
-- daily runs give). Two cases:
--   - events attributed by a login carry a CRM id that may since have been merged into another (two CRM
--     records found to be one person): point them at the canonical id;
--   - events attributed through an identifier (cookie, device, handle, card) or anonymous take the
--     identifier's current customer: a cookie that logs in today claims its older anonymous events, and a
--     device found shared by several customers is attributed to nobody.
-- Only rows whose attribution changes are written. Parameters: before_date, after_date (the first and last
-- event date the run rebuilds). Identifier {interactions}: the working build (core.interactions) when a run
-- builds, the validated build (core.validated_interactions) when its core gate promotes. Returns the row count.
with

current_map as (
    select identifier_type, identifier, customer_id
    from core.identity_map
),

merged as (
    update {interactions} as i
    set customer_id = m.customer_id
    from current_map as m
    where (i.event_date < %(before_date)s or i.event_date > %(after_date)s)
        and i.attribution = 'login'
        and m.identifier_type = 'customer_id'
        and m.customer_id is not null
        and m.identifier <> m.customer_id
        and i.customer_id = m.identifier
    returning 1
),

reattributed as (
    update {interactions} as i
    set customer_id = m.customer_id,
        attribution = case when m.customer_id is null then 'anonymous' else 'identity_map' end
    from current_map as m
    where (i.event_date < %(before_date)s or i.event_date > %(after_date)s)
        and i.attribution <> 'login'
        and m.identifier_type = i.identifier_type
        and m.identifier = i.identifier
        and i.customer_id is distinct from m.customer_id
    returning 1
)

select (select count(*) from merged) + (select count(*) from reattributed) as rows_changed
