-- core_stores: the store list delivered with the catalog into core.store_snapshots (grain: one store per
-- snapshot date) and core.stores (grain: one store; the latest list wins).
-- Parameters: business_date (the arrival date this load owns). Returns rows_staged, duplicates_dropped,
-- quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.store_locations
    where _arrival_date = %(business_date)s
),

extracted as materialized (
    select
        raw_lines.*,
        nullif(fields ->> 'store_id', '') as store_id,
        nullif(fields ->> 'city', '') as city,
        nullif(fields ->> 'timezone', '') as timezone,
        nullif(fields ->> 'currency', '') as currency
    from raw_lines
),

classified as (
    select
        extracted.*,
        case
            when _parse_error is not null then _parse_error
            when store_id is null then 'missing_field:store_id'
            when timezone is null then 'missing_field:timezone'
            when currency is null then 'missing_field:currency'
            when not exists (select 1 from pg_timezone_names as tz where tz.name = extracted.timezone)
                then 'unknown_timezone'
        end as reason,
        'store_id=' || coalesce(store_id, '') as detail
    from extracted
),

-- accounting tail: sql/ingest/tail/accounting.sql
-- (its repeated, first_copies, valid and quarantined CTEs stand here; this file's `staged` CTEs below are
-- spliced in before its final)

-- the day's store list as delivered (what the accounting counts): the store as of this date
staged as (
    insert into core.store_snapshots (snapshot_date, store_id, city, timezone, currency)
    select _arrival_date, store_id, coalesce(city, ''), timezone, currency
    from valid
    where is_first
    returning *
),

-- the latest list wins: a backfilled older date does not overwrite a newer one
current_stores as (
    insert into core.stores as s (store_id, city, timezone, currency, snapshot_date)
    select store_id, city, timezone, currency, snapshot_date
    from staged
    on conflict (store_id) do update set
        city = excluded.city, timezone = excluded.timezone, currency = excluded.currency,
        snapshot_date = excluded.snapshot_date
    where s.snapshot_date <= excluded.snapshot_date
),
