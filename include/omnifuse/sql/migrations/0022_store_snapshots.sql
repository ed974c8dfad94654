-- core.store_snapshots: the store list as each day delivered it (issue 23, finding 10). core.stores keeps only the
-- latest list, so a till file of an older date loaded (or re-run) after a store changed its time zone or currency
-- was read in today's; stg_store_sales now reads each store as of the arrival date it loads: the latest list
-- delivered on or before that date (the earliest one for a date before any list). core.stores stays the current
-- list (what the marts join).

create table core.store_snapshots (
    snapshot_date date not null,
    store_id text not null,
    city text not null,
    timezone text not null,
    currency text not null,
    primary key (snapshot_date, store_id)
) partition by list (snapshot_date);
comment on table core.store_snapshots is
    'Stores as delivered each day (catalog/<date>/stores.csv); grain: one store per snapshot date. Till times of '
    'an arrival date are read in the time zone of the latest snapshot on or before it.';

-- every list loaded before this migration, from its raw lines, by the rules of sql/ingest/core_stores.sql (the
-- first valid line of a store per date); partitions are named like every other (warehouse.partition_name)
do $$
declare
    day date;
begin
    for day in select distinct _arrival_date from raw.store_locations loop
        execute format('create table core.%I partition of core.store_snapshots for values in (%L)',
                       'store_snapshots_p' || to_char(day, 'YYYYMMDD'), day);
    end loop;
end $$;

insert into core.store_snapshots (snapshot_date, store_id, city, timezone, currency)
select distinct on (_arrival_date, fields ->> 'store_id')
    _arrival_date, fields ->> 'store_id', coalesce(fields ->> 'city', ''), fields ->> 'timezone', fields ->> 'currency'
from raw.store_locations
where _parse_error is null
    and nullif(fields ->> 'store_id', '') is not null
    and nullif(fields ->> 'timezone', '') is not null
    and nullif(fields ->> 'currency', '') is not null
    and exists (select 1 from pg_timezone_names as tz where tz.name = fields ->> 'timezone')
order by _arrival_date, fields ->> 'store_id', _source_file, _line_no;
