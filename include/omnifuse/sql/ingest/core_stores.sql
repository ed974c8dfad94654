-- core_stores: the store list delivered with the catalog into core.stores (grain: one store; latest wins).
-- Parameters: business_date. Returns rows_staged, duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _batch_date, _source_file, _line_no, line, fields, _parse_error
    from raw.stores
    where _batch_date = %(business_date)s
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
        end as reason
    from extracted
),

valid as (
    select
        classified.*,
        row_number() over (partition by store_id order by _source_file, _line_no) as copy_no
    from classified
    where reason is null
),

quarantined as (
    insert into quarantine.stores (_batch_date, _source_file, _line_no, line, reason, detail)
    select _batch_date, _source_file, _line_no, line, reason, 'store_id=' || coalesce(store_id, '')
    from classified
    where reason is not null
    returning reason
),

staged as (
    insert into core.stores as s (store_id, city, timezone, currency, snapshot_date)
    select store_id, coalesce(city, ''), timezone, currency, _batch_date
    from valid
    where copy_no = 1
    on conflict (store_id) do update set
        city = excluded.city, timezone = excluded.timezone, currency = excluded.currency,
        snapshot_date = excluded.snapshot_date
    where s.snapshot_date <= excluded.snapshot_date
    returning 1
),

final as (
    select
        (select count(*) from valid where copy_no = 1) as rows_staged,
        (select count(*) from valid where copy_no > 1) + 0 * (select count(*) from staged) as duplicates_dropped,
        (select coalesce(jsonb_object_agg(reason, n), '{}'::jsonb)
         from (select reason, count(*) as n from quarantined group by reason) as by_reason) as quarantine_by_reason
)

select * from final
