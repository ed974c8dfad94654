-- core_fx_rates: daily FX rates delivered with the catalog into core.fx_rates (grain: rate_date, currency).
-- Parameters: business_date (the arrival date this load owns). Returns rows_staged, duplicates_dropped,
-- quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.fx_rates
    where _arrival_date = %(business_date)s
),

extracted as materialized (
    select
        raw_lines.*,
        nullif(fields ->> 'rate_date', '') as rate_date_text,
        upper(nullif(fields ->> 'currency', '')) as currency,
        nullif(fields ->> 'rate_to_eur', '') as rate_text
    from raw_lines
),

classified as (
    select
        extracted.*,
        case
            when _parse_error is not null then _parse_error
            when rate_date_text is null then 'missing_field:rate_date'
            when currency is null then 'missing_field:currency'
            when rate_text is null then 'missing_field:rate_to_eur'
            when not ops.is_valid_input(rate_date_text, 'date') then 'invalid_date'
            when not ops.is_valid_input(rate_text, 'numeric') or rate_text::numeric <= 0 or rate_text::numeric = 'NaN' then 'invalid_rate'
        end as reason,
        'currency=' || coalesce(currency, '') as detail
    from extracted
),

-- accounting tail: sql/ingest/tail/accounting.sql
-- (its repeated, first_copies, valid and quarantined CTEs stand here; this file's `staged` CTEs below are
-- spliced in before its final)

staged as (
    insert into core.fx_rates (rate_date, currency, rate_to_eur)
    select rate_date_text::date, currency, rate_text::numeric
    from valid
    where is_first
    on conflict (rate_date, currency) do update set rate_to_eur = excluded.rate_to_eur
    returning 1
),
