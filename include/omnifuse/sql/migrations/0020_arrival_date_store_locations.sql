-- Issue 13: one name per thing.
--
-- 1. The `stores` source (catalog/<date>/stores.csv, the store list feeding core.stores) sat beside the `store`
--    channel (point-of-sale lines) and confused both: it is now the `store_locations` source. Its raw and
--    quarantine tables and their list partitions follow (warehouse.partition_name: <table>_p<yyyymmdd>, so later
--    loads find and replace them), and so do the ops history rows that record the source name, so the audit of a
--    date loaded before this migration continues under the new name. The landed file keeps its name (stores.csv:
--    the landing contract) and the core entity stays core.stores.
-- 2. `_batch_date` was always the arrival date (the landing folder's date, the partition a load owns): the column
--    becomes `_arrival_date` on every raw, quarantine and staging table and in the lineage of core.interactions
--    and quarantine.interactions. A rename reaches the partitions and the indexes; the one view that selects it by
--    `*` (core.usable_interactions) keeps its own column name, so it is renamed too. No function body of
--    0001-0019 names the column or the source (checked by tests/integration/test_migration_0020.py).

-- 1. the store_locations source
alter table raw.stores rename to store_locations;
alter table quarantine.stores rename to store_locations;

do $$
declare
    part record;
begin
    for part in
        select child_ns.nspname as schema_name, child.relname as old_name
        from pg_inherits as inh
        join pg_class as child on child.oid = inh.inhrelid
        join pg_namespace as child_ns on child_ns.oid = child.relnamespace
        join pg_class as parent on parent.oid = inh.inhparent
        join pg_namespace as parent_ns on parent_ns.oid = parent.relnamespace
        where parent_ns.nspname in ('raw', 'quarantine')
            and parent.relname = 'store_locations'
            and child.relname ~ '^stores_p[0-9]{8}$'
    loop
        execute format('alter table %I.%I rename to %I', part.schema_name, part.old_name,
                       'store_locations' || substr(part.old_name, length('stores') + 1));
    end loop;
end $$;

comment on table raw.store_locations is
    'Every landed data line of store_locations (catalog/<date>/stores.csv) as text; fields = CSV columns keyed by '
    'canonical name; _parse_error set when the CSV line could not be split.';
comment on table quarantine.store_locations is
    'Lines of store_locations (catalog/<date>/stores.csv) kept out of core.stores, with the rule they broke '
    '(reason) and the value seen (detail).';

update ops.landed_files set source = 'store_locations' where source = 'stores';
update ops.load_audit set channel = 'store_locations' where channel = 'stores';

-- 2. _batch_date -> _arrival_date
do $$
declare
    t text;
begin
    foreach t in array array['raw.web_events', 'raw.mobile_events', 'raw.social_interactions', 'raw.store_sales',
                             'raw.products', 'raw.customers', 'raw.store_locations', 'raw.fx_rates',
                             'quarantine.web_events', 'quarantine.mobile_events', 'quarantine.social_interactions',
                             'quarantine.store_sales', 'quarantine.products', 'quarantine.customers',
                             'quarantine.store_locations', 'quarantine.fx_rates',
                             'staging.web_events', 'staging.mobile_events', 'staging.social_interactions',
                             'staging.store_sales', 'core.interactions', 'quarantine.interactions'] loop
        execute format('alter table %s rename column _batch_date to _arrival_date', t);
        execute format('comment on column %s._arrival_date is %L', t,
            'Arrival date: the landing folder''s date (<folder>/<YYYY-MM-DD>/), the business date of the ingest load that '
            'landed the line. Not when the event happened (event_ts, event_date).');
    end loop;
end $$;

alter table core.usable_interactions rename column _batch_date to _arrival_date;

comment on schema raw is 'Exact copy of landed lines with lineage (_arrival_date, _source_file, _line_no, _loaded_at).';
comment on table core.interactions is
    'One row per real event across all channels (grain: channel, event_key), partitioned by the UTC event date. '
    'customer_id is resolved through core.identity_map (null only for anonymous traffic); revenue is in EUR '
    '(purchases only; 0 otherwise). Lineage: source_table, _arrival_date, _source_file, _line_no.';
