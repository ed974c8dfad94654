-- identity_evidence: every identifier observed on any arrival date loaded so far, summed over dates.
-- Grain: one row per (identifier_type, identifier, login_customer_id). All dates, not only up to the run's
-- business date: a backfill of an old date must not forget what later days taught us.
select
    identifier_type,
    identifier,
    login_customer_id,
    sum(events)::bigint as events,
    min(first_seen)::date as first_seen,
    max(last_seen)::date as last_seen
from core.identity_observations
group by identifier_type, identifier, login_customer_id
