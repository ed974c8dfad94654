-- stg_store_sales: type one arrival date of raw.store_sales (POS CSV, columns in raw.fields).
-- Grain of the output: one row per (receipt_id, line_no). Store-local time is converted with the store's
-- time zone (core.stores); local_time_note flags DST-ambiguous or non-existent local times (migration 0013);
-- prices stay in the till currency and are checked against the catalog in EUR
-- using the latest FX rate on or before the business date (core.fx_rates; EUR is always known).
-- A negative quantity is a return or cancellation (kept; core.interactions makes it a `return`); a zero price
-- is valid (free items). SKUs matching non_product_skus (postage, fees, adjustments) are staged as
-- line_kind = 'non_product' and are not checked against the catalog. Bounds come from omnifuse.rules.
-- Parameters: business_date, late_window_days, max_quantity, price_outlier_factor, non_product_skus. Returns rows_staged, duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.store_sales
    where _arrival_date = %(business_date)s
),

extracted as materialized (
    select
        raw_lines.*,
        nullif(fields ->> 'receipt_id', '') as receipt_id,
        nullif(fields ->> 'line_no', '') as line_no_text,
        nullif(fields ->> 'store_id', '') as store_id,
        nullif(fields ->> 'loyalty_card', '') as loyalty_card,
        nullif(fields ->> 'sku', '') as sku,
        nullif(fields ->> 'quantity', '') as quantity_text,
        nullif(fields ->> 'unit_price', '') as price_text,
        upper(nullif(fields ->> 'currency', '')) as currency,
        nullif(fields ->> 'sold_at', '') as ts_text,
        case when coalesce(fields ->> 'sku', '') ~* %(non_product_skus)s then 'non_product' else 'product' end
            as line_kind
    from raw_lines
),

typed as (
    select
        extracted.*,
        case when ops.is_valid_input(line_no_text, 'integer') then line_no_text::integer end as line_no,
        case when ops.is_valid_input(quantity_text, 'integer') then quantity_text::integer end as quantity,
        case when ops.is_valid_input(price_text, 'numeric') then price_text::numeric end as unit_price,
        -- ISO 8601 only (a shop's own format goes through its mapping): '02/11/2026' is not read as 11 February
        case
            when ts_text ~ '^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$'
                and ops.is_valid_input(ts_text, 'timestamp') then ts_text::timestamp
        end as sold_at_local,
        stores.timezone,
        stores.currency as store_currency,
        rates.rate_to_eur,
        products.price_eur as catalog_price
    from extracted
    left join core.stores as stores on stores.store_id = extracted.store_id
    left join core.known_rates(%(business_date)s) as rates on rates.currency = extracted.currency
    left join core.product_snapshots as products
        on products.snapshot_date = %(business_date)s and products.product_id = extracted.sku
),

converted as (
    select
        typed.*,
        sold_at_local at time zone timezone as event_ts,
        -- a fall-back hour's local time reads back from two instants one hour apart (the conversion picks the
        -- later); a spring-forward gap's local time reads back as another time (column comment: migration 0013)
        case
            when (sold_at_local at time zone timezone) at time zone timezone <> sold_at_local then 'nonexistent'
            when ((sold_at_local - interval '1 hour') at time zone timezone) + interval '1 hour'
                     <> sold_at_local at time zone timezone
                 and (((sold_at_local - interval '1 hour') at time zone timezone) + interval '1 hour')
                     at time zone timezone = sold_at_local then 'ambiguous'
            when ((sold_at_local + interval '1 hour') at time zone timezone) - interval '1 hour'
                     <> sold_at_local at time zone timezone
                 and (((sold_at_local + interval '1 hour') at time zone timezone) - interval '1 hour')
                     at time zone timezone = sold_at_local then 'ambiguous'
        end as local_time_note
    from typed
),

classified as (
    select
        converted.*,
        case
            when _parse_error is not null then _parse_error
            when receipt_id is null then 'missing_field:receipt_id'
            when line_no_text is null then 'missing_field:line_no'
            when store_id is null then 'missing_field:store_id'
            when sku is null then 'missing_field:sku'
            when quantity_text is null then 'missing_field:quantity'
            when price_text is null then 'missing_field:unit_price'
            when currency is null then 'missing_field:currency'
            when ts_text is null then 'missing_field:sold_at'
            when line_no is null then 'invalid_line_no'
            when sold_at_local is null then 'invalid_timestamp'
            when timezone is null then 'unknown_store'
            when rate_to_eur is null or currency <> store_currency then 'unknown_currency'
            when unit_price is null then 'invalid_price'
            when quantity is null or quantity = 0 or abs(quantity) > %(max_quantity)s then 'invalid_quantity'
            -- a till's business day is the store's local day (an evening sale in New York is past midnight UTC)
            when sold_at_local >= (%(business_date)s::date + 1)::timestamp + interval '1 hour' then 'clock_skew'
            when sold_at_local < (%(business_date)s::date - %(late_window_days)s::int)::timestamp then 'too_late'
            -- an adjustment line (bad debt, a discount) may carry any price: it is money, not a product
            when line_kind = 'non_product' then null
            when unit_price < 0 then 'invalid_price'
            when catalog_price is null then 'unknown_sku'
            when unit_price * rate_to_eur > %(price_outlier_factor)s * catalog_price then 'invalid_price'
        end as reason
    from converted
),

valid as (
    select
        classified.*,
        row_number() over (partition by receipt_id, line_no order by _source_file, _line_no) as copy_no
    from classified
    where reason is null
),

quarantined as (
    insert into quarantine.store_sales (_arrival_date, _source_file, _line_no, line, reason, detail)
    select
        _arrival_date, _source_file, _line_no, line, reason,
        case
            when reason = 'unknown_sku' then 'sku=' || sku
            when reason = 'invalid_price' then 'unit_price=' || coalesce(price_text, '') || ' ' || coalesce(currency, '') || ' catalog_eur=' || coalesce(catalog_price::text, '')
            when reason = 'unknown_store' then 'store_id=' || store_id
            when reason = 'unknown_currency' then 'currency=' || currency || ' store_currency=' || coalesce(store_currency, '')
            when reason in ('clock_skew', 'too_late', 'invalid_timestamp') then 'sold_at=' || ts_text
            when reason = 'invalid_quantity' then 'quantity=' || quantity_text
        end
    from classified
    where reason is not null
    returning reason
),

staged as (
    insert into staging.store_sales (
        receipt_id, line_no, store_id, loyalty_card, sku, quantity, unit_price, currency, sold_at_local, event_ts,
        is_late, line_kind, _arrival_date, _source_file, _line_no, local_time_note
    )
    select
        receipt_id, line_no, store_id, loyalty_card, sku, quantity, unit_price, currency, sold_at_local, event_ts,
        sold_at_local < %(business_date)s::date::timestamp, line_kind, _arrival_date, _source_file, _line_no,
        local_time_note
    from valid
    where copy_no = 1
    returning 1
),

final as (
    select
        (select count(*) from staged) as rows_staged,
        (select count(*) from valid where copy_no > 1) as duplicates_dropped,
        (select coalesce(jsonb_object_agg(reason, n), '{}'::jsonb)
         from (select reason, count(*) as n from quarantined group by reason) as by_reason) as quarantine_by_reason
)

select * from final
