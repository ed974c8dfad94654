-- Typed staging tables (partitioned by arrival date) and the core snapshot tables.
create table staging.web_events (
    event_id text not null,
    event_type text not null,
    source_event_type text not null,
    event_ts timestamptz not null,
    cookie_id text,
    session_id text,
    customer_id text,
    sku text not null,
    price numeric not null,
    quantity integer not null,
    page text,
    referrer text,
    user_agent text,
    is_late boolean not null,
    _batch_date date not null,
    _source_file text not null,
    _line_no integer not null
) partition by list (_batch_date);
comment on table staging.web_events is 'Web clickstream, one row per event (deduplicated on event_id within the arrival date); event_ts in UTC.';

create table staging.mobile_events (
    event_id text not null,
    event_type text not null,
    source_event_type text not null,
    event_ts timestamptz not null,
    device_id text,
    customer_id text,
    sku text not null,
    price numeric not null,
    quantity integer not null,
    currency text not null,
    app_version text,
    os text,
    is_late boolean not null,
    _batch_date date not null,
    _source_file text not null,
    _line_no integer not null
) partition by list (_batch_date);
comment on table staging.mobile_events is 'Mobile app events, one row per event (deduplicated on event id); epoch ms converted to UTC.';

create table staging.social_interactions (
    interaction_id text not null,
    platform text not null,
    handle text not null,
    event_type text not null,
    sku text not null,
    event_ts timestamptz not null,
    local_ts_text text not null,
    comment_text text,
    is_late boolean not null,
    _batch_date date not null,
    _source_file text not null,
    _line_no integer not null
) partition by list (_batch_date);
comment on table staging.social_interactions is 'Likes, shares, comments and reviews of products by social handle; local time with offset converted to UTC.';

create table staging.store_sales (
    receipt_id text not null,
    line_no integer not null,
    store_id text not null,
    loyalty_card text,
    sku text not null,
    quantity integer not null,
    unit_price numeric not null,
    currency text not null,
    sold_at_local timestamp not null,
    event_ts timestamptz not null,
    is_late boolean not null,
    _batch_date date not null,
    _source_file text not null,
    _line_no integer not null
) partition by list (_batch_date);
comment on table staging.store_sales is 'Point-of-sale receipt lines (one per receipt_id, line_no); store-local time converted with the store time zone; price in store currency.';

create table core.product_snapshots (
    snapshot_date date not null,
    product_id text not null,
    name text not null,
    category text not null,
    brand text not null,
    price numeric not null,
    currency text not null,
    stock integer not null,
    repeatable boolean not null,
    in_store boolean not null,
    primary key (snapshot_date, product_id)
) partition by list (snapshot_date);
comment on table core.product_snapshots is 'The catalog as delivered each day; grain: one product per snapshot date. product_id is the SKU.';

create table core.products (
    product_id text primary key,
    name text not null,
    category text not null,
    brand text not null,
    price numeric not null,
    currency text not null,
    stock integer not null,
    repeatable boolean not null,
    in_store boolean not null,
    snapshot_date date not null
);
comment on table core.products is 'Current catalog: each product as of its latest snapshot (a backfill of an older day never overwrites a newer one).';

create table core.customer_snapshots (
    snapshot_date date not null,
    customer_id text not null,
    email_sha256 text,
    phone_sha256 text,
    loyalty_card text,
    social_handles text[] not null,
    signup_date date,
    home_store_id text,
    country text,
    primary key (snapshot_date, customer_id)
) partition by list (snapshot_date);
comment on table core.customer_snapshots is 'CRM as delivered each day; grain: one CRM customer id per snapshot date.';

create table core.customers (
    customer_id text primary key,
    email_sha256 text,
    phone_sha256 text,
    loyalty_card text,
    social_handles text[] not null,
    signup_date date,
    home_store_id text,
    country text,
    snapshot_date date not null
);
comment on table core.customers is 'Current CRM customers, each as of its latest snapshot.';

create table core.stores (
    store_id text primary key,
    city text not null,
    timezone text not null,
    currency text not null,
    snapshot_date date not null
);
comment on table core.stores is 'Stores with their IANA time zone and till currency (used to convert POS times to UTC).';

create table core.fx_rates (
    rate_date date not null,
    currency text not null,
    rate_to_eur numeric not null,
    primary key (rate_date, currency)
);
comment on table core.fx_rates is 'Daily FX rates into the reporting currency (EUR): amount_eur = amount * rate_to_eur.';
