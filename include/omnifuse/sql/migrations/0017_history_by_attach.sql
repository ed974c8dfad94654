-- Publish history by partition attach: a published table kept in history is written once. The live
-- mart.<table> is itself the partition of its business date in mart.<table>_history (a check constraint
-- business_date = <date> named <table>_one_date lets it be attached without a scan); when a newer date is swapped
-- in, it is renamed mart.<table>_history_p<yyyymmdd>. See omnifuse.publish.
--
-- A warehouse published before this migration holds a copy of the live date in its history: the live table
-- replaces that copy (same rows), so the next publish retires it into history instead of dropping it. An empty
-- live table (never published) is left alone.
do $$
declare
    t text;
    day date;
    days integer;
    copy_name text;
begin
    foreach t in array array['customer_recommendations', 'customer_segments'] loop
        execute format('select min(business_date), count(distinct business_date) from mart.%I', t) into day, days;
        continue when days <> 1;
        select c.relname into copy_name
        from pg_inherits as i
        join pg_class as c on c.oid = i.inhrelid
        where i.inhparent = format('mart.%I', t || '_history')::regclass
            and pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%L)', day);
        if copy_name is not null then
            execute format('alter table mart.%I detach partition mart.%I', t || '_history', copy_name);
            execute format('drop table mart.%I', copy_name);
        end if;
        execute format('alter table mart.%I add constraint %I check (business_date = %L)', t, t || '_one_date', day);
        execute format('alter table mart.%I attach partition mart.%I for values in (%L)', t || '_history', t, day);
    end loop;
end
$$;

comment on table mart.customer_recommendations_history is
    'What mart.customer_recommendations held after each day''s publish (partition per business_date; the live '
    'table is the partition of its date, older dates are mart.customer_recommendations_history_p<yyyymmdd>).';
comment on table mart.customer_segments_history is
    'What mart.customer_segments held after each day''s publish (partition per business_date; the live table is '
    'the partition of its date, older dates are mart.customer_segments_history_p<yyyymmdd>).';
