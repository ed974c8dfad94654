-- core_customers: the CRM snapshot of one business date (raw.customers) into core.customer_snapshots
-- (grain: one CRM customer id per snapshot date), then core.customers (latest snapshot wins).
-- social_handles is a ';'-separated list in the file. Parameters: business_date (the arrival date this load owns).
-- Returns rows_staged, duplicates_dropped, quarantine_by_reason.
with

raw_lines as (
    select _arrival_date, _source_file, _line_no, line, fields, _parse_error
    from raw.customers
    where _arrival_date = %(business_date)s
),

extracted as materialized (
    select
        raw_lines.*,
        nullif(fields ->> 'customer_id', '') as customer_id,
        nullif(fields ->> 'email_sha256', '') as email_sha256,
        nullif(fields ->> 'phone_sha256', '') as phone_sha256,
        nullif(fields ->> 'loyalty_card', '') as loyalty_card,
        coalesce(fields ->> 'social_handles', '') as handles_text,
        nullif(fields ->> 'signup_date', '') as signup_text,
        nullif(fields ->> 'home_store_id', '') as home_store_id,
        nullif(fields ->> 'country', '') as country
    from raw_lines
),

classified as (
    select
        extracted.*,
        case
            when _parse_error is not null then _parse_error
            when customer_id is null then 'missing_field:customer_id'
            when email_sha256 is not null and email_sha256 !~ '^[0-9a-f]{64}$' then 'invalid_hash:email_sha256'
            when phone_sha256 is not null and phone_sha256 !~ '^[0-9a-f]{64}$' then 'invalid_hash:phone_sha256'
            when signup_text is not null and not ops.is_valid_input(signup_text, 'date') then 'invalid_date'
        end as reason,
        'customer_id=' || coalesce(customer_id, '') as detail
    from extracted
),

-- accounting tail: sql/ingest/tail/accounting.sql
-- (its repeated, first_copies, valid and quarantined CTEs stand here; this file's `staged` CTEs below are
-- spliced in before its final)

staged as (
    insert into core.customer_snapshots (
        snapshot_date, customer_id, email_sha256, phone_sha256, loyalty_card, social_handles, signup_date,
        home_store_id, country
    )
    select
        _arrival_date, customer_id, email_sha256, phone_sha256, loyalty_card,
        array_remove(string_to_array(handles_text, ';'), ''), signup_text::date, home_store_id, country
    from valid
    where is_first
    returning *
),

-- the latest snapshot of each customer (data-modifying CTEs always run to completion, read or not)
current_customers as (
    insert into core.customers as c (
        customer_id, email_sha256, phone_sha256, loyalty_card, social_handles, signup_date, home_store_id,
        country, snapshot_date
    )
    select
        customer_id, email_sha256, phone_sha256, loyalty_card, social_handles, signup_date, home_store_id,
        country, snapshot_date
    from staged
    on conflict (customer_id) do update set
        email_sha256 = excluded.email_sha256, phone_sha256 = excluded.phone_sha256,
        loyalty_card = excluded.loyalty_card, social_handles = excluded.social_handles,
        signup_date = excluded.signup_date, home_store_id = excluded.home_store_id, country = excluded.country,
        snapshot_date = excluded.snapshot_date
    where c.snapshot_date <= excluded.snapshot_date
),
