-- Publishing that keeps open snapshots whole (issue 23, finding 2): the live mart tables are no longer renamed
-- into place nor attached as history partitions. A publish replaces their rows inside the same relation (delete +
-- insert, one transaction), so a REPEATABLE READ or SERIALIZABLE reader (an extractor, pg_dump) whose snapshot
-- predates the publish keeps reading the old rows: a renamed-in table is found through the latest catalog while
-- its rows are filtered by the reader's older snapshot, and looked empty to it. See omnifuse.mart.
--
-- Migration 0017 made the live mart.customer_recommendations / mart.customer_segments the history partition of
-- their date. Here the live table leaves its history table, and its date's history becomes a partition of its own
-- holding the same rows (mart.<table>_history_p<yyyymmdd>, no index, like every history partition). Its
-- check (business_date = <date>) goes: the live table now takes each newly published date's rows.
do $$
declare
    t text;
    day date;
    part text;
begin
    foreach t in array array['customer_recommendations', 'customer_segments'] loop
        select pg_get_expr(c.relpartbound, c.oid) into part
        from pg_class as c
        where c.oid = format('mart.%I', t)::regclass and c.relispartition;
        if part is not null then
            day := substring(part from '''(\d{4}-\d{2}-\d{2})''')::date;
            execute format('alter table mart.%I detach partition mart.%I', t || '_history', t);
            part := format('%s_history_p%s', t, to_char(day, 'YYYYMMDD'));
            execute format('create table mart.%I (like mart.%I including defaults)', part, t);
            execute format('insert into mart.%I select * from mart.%I', part, t);
            execute format('alter table mart.%I attach partition mart.%I for values in (%L)',
                           t || '_history', part, day);
        end if;
        execute format('alter table mart.%I drop constraint if exists %I', t, t || '_one_date');
    end loop;
end
$$;

comment on table mart.customer_recommendations_history is
    'What mart.customer_recommendations held after each day''s publish (partition per business_date, '
    'mart.customer_recommendations_history_p<yyyymmdd>; kept OMNIFUSE_MART_RETENTION_DAYS).';
comment on table mart.customer_segments_history is
    'What mart.customer_segments held after each day''s publish (partition per business_date, '
    'mart.customer_segments_history_p<yyyymmdd>; kept OMNIFUSE_MART_RETENTION_DAYS).';
comment on column mart.publish_log.swap_lock_ms is
    'Milliseconds the publish spent replacing the live table''s rows (delete + insert under a ROW EXCLUSIVE lock, '
    'which BI reads neither wait for nor hold up; 0 for a history-only publish).';
