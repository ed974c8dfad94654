-- Raw and quarantine tables: one per source, list-partitioned by arrival date (_batch_date) so that a
-- re-run truncates exactly the partition it owns.
create table ops.landed_files (
    source text not null,
    business_date date not null,
    source_file text not null,
    bytes bigint not null,
    sha256 text not null,
    data_lines integer not null,
    header text,
    column_mapping jsonb not null default '{}'::jsonb,
    landed_at timestamptz not null default now(),
    primary key (source, business_date, source_file)
);
comment on table ops.landed_files is 'One row per landed file: size, checksum, data lines, CSV header and any column renames mapped.';

create table ops.load_audit (
    channel text not null,
    business_date date not null,
    files integer not null,
    lines_read bigint not null,
    rows_staged bigint not null,
    rows_quarantined bigint not null,
    duplicates_dropped bigint not null,
    quarantine_by_reason jsonb not null default '{}'::jsonb,
    notes jsonb not null default '[]'::jsonb,
    loaded_at timestamptz not null default now(),
    primary key (channel, business_date),
    constraint load_audit_reconciles check (lines_read = rows_staged + rows_quarantined + duplicates_dropped)
);
comment on table ops.load_audit is 'Per (channel, business date): lines read = rows staged + rows quarantined + duplicates dropped. Replaced on re-run.';

do $$
declare
    t text;
begin
    foreach t in array array['web_events', 'mobile_events', 'social_interactions', 'store_sales', 'products',
                             'customers', 'stores', 'fx_rates'] loop
        execute format($f$
            create table raw.%1$I (
                _batch_date date not null,
                _source_file text not null,
                _line_no integer not null,
                _loaded_at timestamptz not null default now(),
                line text not null,
                fields jsonb,
                _parse_error text
            ) partition by list (_batch_date)$f$, t);
        execute format($f$comment on table raw.%1$I is %2$L$f$, t,
            'Every landed data line of ' || t || ' as text; fields = CSV columns keyed by canonical name; '
            || '_parse_error set when the CSV line could not be split.');
        execute format($f$
            create table quarantine.%1$I (
                _batch_date date not null,
                _source_file text not null,
                _line_no integer not null,
                line text not null,
                reason text not null,
                detail text,
                _quarantined_at timestamptz not null default now()
            ) partition by list (_batch_date)$f$, t);
        execute format($f$comment on table quarantine.%1$I is %2$L$f$, t,
            'Lines of ' || t || ' kept out of staging, with the rule they broke (reason) and the value seen (detail).');
    end loop;
end $$;
