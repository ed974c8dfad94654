-- stg_social_interactions: type one arrival date of raw.social_interactions (CSV, columns in raw.fields).
-- Grain of the output: one row per interaction_id. Local time with offset becomes UTC.
-- Parameters: business_date, late_window_days. Returns rows_staged, duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.social_interactions
    where _arrival_date = %(business_date)s
),

extracted as materialized (
    select
        raw_lines.*,
        nullif(fields ->> 'interaction_id', '') as interaction_id,
        nullif(fields ->> 'platform', '') as platform,
        nullif(fields ->> 'handle', '') as handle,
        nullif(fields ->> 'action', '') as action,
        nullif(fields ->> 'sku', '') as sku,
        nullif(fields ->> 'occurred_at', '') as ts_text,
        fields ->> 'text' as comment_text
    from raw_lines
),

typed as (
    select
        extracted.*,
        case when ops.is_valid_input(ts_text, 'timestamptz') then ts_text::timestamptz end as event_ts,
        products.product_id is not null as known_sku
    from extracted
    left join core.product_snapshots as products
        on products.snapshot_date = %(business_date)s and products.product_id = extracted.sku
),

classified as (
    select
        typed.*,
        case
            when _parse_error is not null then _parse_error
            when interaction_id is null then 'missing_field:interaction_id'
            when handle is null then 'missing_field:handle'
            when action is null then 'missing_field:action'
            when sku is null then 'missing_field:sku'
            when ts_text is null then 'missing_field:occurred_at'
            when action not in ('like', 'share', 'comment', 'review') then 'unknown_event_type'
            when event_ts is null or ts_text !~ '([+-]\d{2}:?\d{2}|Z)$' then 'invalid_timestamp'
            when not known_sku then 'unknown_sku'
            when event_ts >= (%(business_date)s::date + 1)::timestamptz + interval '1 hour' then 'clock_skew'
            when event_ts < (%(business_date)s::date - %(late_window_days)s::int)::timestamptz then 'too_late'
        end as reason
    from typed
),

valid as (
    select
        classified.*,
        row_number() over (partition by interaction_id order by _source_file, _line_no) as copy_no
    from classified
    where reason is null
),

quarantined as (
    insert into quarantine.social_interactions (_arrival_date, _source_file, _line_no, line, reason, detail)
    select
        _arrival_date, _source_file, _line_no, line, reason,
        case
            when reason = 'unknown_sku' then 'sku=' || sku
            when reason in ('clock_skew', 'too_late', 'invalid_timestamp') then 'occurred_at=' || ts_text
            when reason = 'unknown_event_type' then 'action=' || action
        end
    from classified
    where reason is not null
    returning reason
),

staged as (
    insert into staging.social_interactions (
        interaction_id, platform, handle, event_type, sku, event_ts, local_ts_text, comment_text, is_late,
        _arrival_date, _source_file, _line_no
    )
    select
        interaction_id, coalesce(platform, 'unknown'), handle, action, sku, event_ts, ts_text, comment_text,
        event_ts < %(business_date)s::date::timestamptz, _arrival_date, _source_file, _line_no
    from valid
    where copy_no = 1
    returning 1
),

final as (
    select
        (select count(*) from staged) as rows_staged,
        (select count(*) from valid where copy_no > 1) as duplicates_dropped,
        (select coalesce(jsonb_object_agg(reason, n), '{}'::jsonb)
         from (select reason, count(*) as n from quarantined group by reason) as by_reason) as quarantine_by_reason
)

select * from final
