-- Layers of the warehouse (see DESIGN.md): raw → staging → core → ml → mart, plus quarantine and ops.
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists quarantine;
create schema if not exists core;
create schema if not exists ml;
create schema if not exists mart;
create schema if not exists ops;

comment on schema raw is 'Exact copy of landed lines with lineage (_batch_date, _source_file, _line_no, _loaded_at).';
comment on schema staging is 'One typed, deduplicated table per channel; grain: one real event per row, per arrival date.';
comment on schema quarantine is 'Rows that could not be typed or failed a hard rule, with their raw text and a reason.';
comment on schema core is 'Conformed entities: products, customers, stores, FX rates, identity, interactions.';
comment on schema ops is 'Operational bookkeeping: migrations, landed files, load audit.';

-- ops.is_valid_input(value, type): true when value casts to type without error.
-- PostgreSQL 16 has pg_input_is_valid (no subtransaction); older servers fall back to an exception block.
do $$
begin
    if current_setting('server_version_num')::int >= 160000 then
        execute $f$
            create or replace function ops.is_valid_input(value text, type_name text)
            returns boolean language sql stable parallel safe
            as 'select value is not null and pg_input_is_valid(value, type_name)'
        $f$;
    else
        execute $f$
            create or replace function ops.is_valid_input(value text, type_name text)
            returns boolean language plpgsql stable parallel safe as $b$
            begin
                if value is null then return false; end if;
                execute format('select %L::%s', value, type_name);
                return true;
            exception when others then
                return false;
            end $b$
        $f$;
    end if;
end $$;
