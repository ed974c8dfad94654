-- Identity resolution and the unified interaction table.
create table core.identity_observations (
    evidence_date date not null,
    identifier_type text not null,
    identifier text not null,
    login_customer_id text,
    events integer not null,
    first_seen timestamptz not null,
    last_seen timestamptz not null
);
create index identity_observations_date on core.identity_observations (evidence_date);
comment on table core.identity_observations is
    'Identifiers seen in staged events, per arrival date: one row per (evidence_date, identifier_type, identifier, '
    'login_customer_id). login_customer_id is set when the event was logged in (cookie/device ↔ customer evidence).';

create table core.identity_map (
    identifier_type text not null,
    identifier text not null,
    customer_id text,
    rule text not null,
    status text not null check (status in ('resolved', 'shared', 'over_linked', 'unresolved')),
    linked_customers integer not null,
    first_seen date,
    last_seen date,
    resolved_for date not null,
    primary key (identifier_type, identifier)
);
comment on table core.identity_map is
    'Every known identifier and the one customer it belongs to (grain: identifier_type, identifier). '
    'customer_id is the canonical CRM id of the cluster (the smallest id among merged CRM records); null when '
    'the identifier is anonymous (unresolved), used by several customers (shared) or on too many CRM records '
    '(over_linked). rule says which evidence linked it.';
comment on column core.identity_map.linked_customers is 'How many distinct canonical customers the evidence links.';
comment on column core.identity_map.resolved_for is 'Business date of the run that computed this row.';

create table core.identity_runs (
    business_date date primary key,
    identifiers integer not null,
    resolved integer not null,
    customers integer not null,
    merged_crm_ids integer not null,
    shared integer not null,
    over_linked integer not null,
    unresolved integer not null,
    seconds numeric not null,
    computed_at timestamptz not null default now()
);
comment on table core.identity_runs is 'One row per identity-resolution run: how many identifiers, clusters, guards hit.';

create table core.interactions (
    event_date date not null,
    channel text not null check (channel in ('web', 'mobile', 'social', 'store')),
    event_key text not null,
    customer_id text,
    identifier_type text,
    identifier text,
    attribution text not null,
    product_id text not null,
    event_type text not null
        check (event_type in ('view', 'click', 'add_to_cart', 'purchase', 'like', 'share', 'comment', 'review')),
    event_ts timestamptz not null,
    quantity integer not null,
    revenue numeric(14, 4) not null,
    session_key text,
    store_id text,
    is_late boolean not null,
    source_table text not null,
    _batch_date date not null,
    _source_file text not null,
    _line_no integer not null
) partition by list (event_date);
comment on table core.interactions is
    'One row per real event across all channels (grain: channel, event_key), partitioned by the UTC event date. '
    'customer_id is resolved through core.identity_map (null only for anonymous traffic); revenue is in EUR '
    '(purchases only; 0 otherwise). Lineage: source_table, _batch_date, _source_file, _line_no.';
comment on column core.interactions.attribution is
    'login (the event carried a customer id), identity_map (resolved through its identifier) or anonymous.';
comment on column core.interactions.session_key is 'The basket: web session id, mobile device + UTC day, or store receipt id.';

create table quarantine.interactions (
    event_date date not null,
    channel text not null,
    event_key text not null,
    reason text not null,
    detail text,
    source_table text not null,
    _batch_date date not null,
    _source_file text not null,
    _line_no integer not null
);
create index quarantine_interactions_date on quarantine.interactions (event_date);
comment on table quarantine.interactions is
    'Staged events not admitted to core.interactions, with the reason (e.g. the same event staged again on a '
    'later arrival date). Staged rows = core.interactions + quarantine.interactions, per event date.';

create table core.interaction_builds (
    event_date date primary key,
    business_date date not null,
    rows_staged integer not null,
    rows_built integer not null,
    rows_quarantined integer not null,
    customers integer not null,
    anonymous_rows integer not null,
    built_at timestamptz not null default now(),
    check (rows_staged = rows_built + rows_quarantined)
);
comment on table core.interaction_builds is
    'Each rebuild of a core.interactions partition: staged rows reconcile with built + quarantined.';
