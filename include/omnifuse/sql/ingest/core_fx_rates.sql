-- core_fx_rates: daily FX rates delivered with the catalog into core.fx_rates (grain: rate_date, currency).
-- Parameters: business_date. Returns rows_staged, duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _batch_date, _source_file, _line_no, line, fields, _parse_error
    from raw.fx_rates
    where _batch_date = %(business_date)s
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
        end as reason
    from extracted
),

valid as (
    select
        classified.*,
        row_number() over (partition by rate_date_text, currency order by _source_file, _line_no) as copy_no
    from classified
    where reason is null
),

quarantined as (
    insert into quarantine.fx_rates (_batch_date, _source_file, _line_no, line, reason, detail)
    select _batch_date, _source_file, _line_no, line, reason, 'currency=' || coalesce(currency, '')
    from classified
    where reason is not null
    returning reason
),

staged as (
    insert into core.fx_rates (rate_date, currency, rate_to_eur)
    select rate_date_text::date, currency, rate_text::numeric
    from valid
    where copy_no = 1
    on conflict (rate_date, currency) do update set rate_to_eur = excluded.rate_to_eur
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
