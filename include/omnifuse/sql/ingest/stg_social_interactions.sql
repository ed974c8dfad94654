-- stg_social_interactions: type one arrival date of raw.social_interactions (CSV, columns in raw.fields).
-- Grain of the output: one row per interaction_id. Local time with offset becomes UTC.
-- Parameters: business_date (the arrival date this load owns), late_window_days. Returns rows_staged,
-- duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.social_interactions
    where _arrival_date = %(business_date)s
),

-- one narrow row per line: typed columns, the first rule broken, and the line itself only when quarantined
classified as materialized (
    select
        r._arrival_date, r._source_file, r._line_no, e.interaction_id, coalesce(e.platform, 'unknown') as platform,
        e.handle, e.action as event_type, e.sku, t.event_ts, e.ts_text as local_ts_text, e.comment_text,
        t.event_ts < %(business_date)s::date::timestamptz as is_late, rule.reason,
        case when rule.reason is not null then r.line end as line,
        case
            when rule.reason = 'unknown_sku' then 'sku=' || e.sku
            when rule.reason in ('clock_skew', 'too_late', 'invalid_timestamp') then 'occurred_at=' || e.ts_text
            when rule.reason = 'unknown_event_type' then 'action=' || e.action
        end as detail
    from raw_lines as r
    -- lateral subqueries with offset 0 are computed once per row (not inlined into every expression)
    cross join lateral (
        select
            nullif(r.fields ->> 'interaction_id', '') as interaction_id,
            nullif(r.fields ->> 'platform', '') as platform,
            nullif(r.fields ->> 'handle', '') as handle,
            nullif(r.fields ->> 'action', '') as action,
            nullif(r.fields ->> 'sku', '') as sku,
            nullif(r.fields ->> 'occurred_at', '') as ts_text,
            r.fields ->> 'text' as comment_text
        offset 0
    ) as e
    left join core.product_snapshots as products
        on products.snapshot_date = %(business_date)s and products.product_id = e.sku
    cross join lateral (
        select case when ops.is_valid_input(e.ts_text, 'timestamptz') then e.ts_text::timestamptz end as event_ts
        offset 0
    ) as t
    cross join lateral (
        select case
            when _parse_error is not null then _parse_error
            when e.interaction_id is null then 'missing_field:interaction_id'
            when e.handle is null then 'missing_field:handle'
            when e.action is null then 'missing_field:action'
            when e.sku is null then 'missing_field:sku'
            when e.ts_text is null then 'missing_field:occurred_at'
            when e.action not in ('like', 'share', 'comment', 'review') then 'unknown_event_type'
            when t.event_ts is null or e.ts_text !~ '([+-]\d{2}:?\d{2}|Z)$' then 'invalid_timestamp'
            when products.product_id is null then 'unknown_sku'
            when t.event_ts >= (%(business_date)s::date + 1)::timestamptz + interval '1 hour' then 'clock_skew'
            when t.event_ts < (%(business_date)s::date - %(late_window_days)s::int)::timestamptz then 'too_late'
        end as reason
        offset 0
    ) as rule
),

-- accounting tail: sql/ingest/tail/accounting.sql
