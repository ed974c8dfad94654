-- core_products: the catalog snapshot of one business date (raw.products, CSV columns in raw.fields) into
-- core.product_snapshots (grain: one product per snapshot date), then core.products (latest snapshot wins;
-- a backfill of an older date never overwrites a newer one).
-- Prices may be in any currency core.fx_rates knows (latest rate on or before the date; EUR is always known):
-- price_eur is kept beside the price. A zero price is valid (free items); a negative one is not.
-- Parameters: business_date (the arrival date this load owns). Returns rows_staged, duplicates_dropped,
-- quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.products
    where _arrival_date = %(business_date)s
),

extracted as materialized (
    select
        raw_lines.*,
        nullif(fields ->> 'sku', '') as product_id,
        nullif(fields ->> 'name', '') as name,
        nullif(fields ->> 'category', '') as category,
        nullif(fields ->> 'brand', '') as brand,
        nullif(fields ->> 'price', '') as price_text,
        upper(coalesce(nullif(fields ->> 'currency', ''), %(default_currency)s)) as currency,
        nullif(fields ->> 'stock', '') as stock_text,
        lower(coalesce(nullif(fields ->> 'repeatable', ''), 'false')) as repeatable_text,
        lower(coalesce(nullif(fields ->> 'in_store', ''), 'false')) as in_store_text
    from raw_lines
),

classified as (
    select
        extracted.*,
        case when extracted.currency = 'EUR' then 1 else rates.rate_to_eur end as rate_to_eur,
        case
            when _parse_error is not null then _parse_error
            when product_id is null then 'missing_field:sku'
            when name is null then 'missing_field:name'
            when category is null then 'missing_field:category'
            when brand is null then 'missing_field:brand'
            when price_text is null then 'missing_field:price'
            when not ops.is_valid_input(price_text, 'numeric') or price_text::numeric < 0 then 'invalid_price'
            when extracted.currency <> 'EUR' and rates.rate_to_eur is null then 'unknown_currency'
            when price_text::numeric * coalesce(rates.rate_to_eur, 1) > %(max_price_eur)s then 'invalid_price'
            when not ops.is_valid_input(coalesce(stock_text, '0'), 'integer') or coalesce(stock_text, '0')::integer < 0
                then 'invalid_stock'
            when not ops.is_valid_input(repeatable_text, 'boolean') or not ops.is_valid_input(in_store_text, 'boolean')
                then 'invalid_boolean'
        end as reason,
        'sku=' || coalesce(product_id, '') as detail
    from extracted
    left join core.known_rates(%(business_date)s) as rates on rates.currency = extracted.currency
),

-- accounting tail: sql/ingest/tail/accounting.sql
-- (its repeated, first_copies, valid and quarantined CTEs stand here; this file's `staged` CTEs below are
-- spliced in before its final)

staged as (
    insert into core.product_snapshots (
        snapshot_date, product_id, name, category, brand, price, currency, price_eur, stock, repeatable, in_store
    )
    select
        _arrival_date, product_id, name, category, brand, price_text::numeric, currency,
        round(price_text::numeric * rate_to_eur, 4),
        coalesce(stock_text, '0')::integer, repeatable_text::boolean, in_store_text::boolean
    from valid
    where is_first
    returning *
),

-- the latest snapshot of each product (data-modifying CTEs always run to completion, read or not)
current_products as (
    insert into core.products as p (
        product_id, name, category, brand, price, currency, price_eur, stock, repeatable, in_store, snapshot_date
    )
    select product_id, name, category, brand, price, currency, price_eur, stock, repeatable, in_store, snapshot_date
    from staged
    on conflict (product_id) do update set
        name = excluded.name, category = excluded.category, brand = excluded.brand, price = excluded.price,
        currency = excluded.currency, price_eur = excluded.price_eur, stock = excluded.stock, repeatable = excluded.repeatable,
        in_store = excluded.in_store, snapshot_date = excluded.snapshot_date
    where p.snapshot_date <= excluded.snapshot_date
),
