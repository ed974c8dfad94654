-- Published tables for BI: built aside, checked, swapped in atomically; a dated history of each.
create table mart.customer_recommendations (
    business_date date not null,
    customer_id text not null,
    rank integer not null,
    product_id text not null,
    score double precision not null,
    reason text not null,
    contributing_models text[] not null,
    model_version text not null,
    primary key (customer_id, rank)
);
comment on table mart.customer_recommendations is
    'Top-K recommendations per active customer from the champion model (grain: customer_id, rank). '
    'Business rules applied: in stock, not already bought unless repeatable, capped per category.';
comment on column mart.customer_recommendations.rank is '1 = best; ranks run 1..n without gaps.';
comment on column mart.customer_recommendations.score is 'Fused score after business rules; non-increasing with rank.';
comment on column mart.customer_recommendations.reason is 'Why, in words a customer-facing team can use.';
comment on column mart.customer_recommendations.contributing_models is 'Base models whose top candidates included it.';
comment on column mart.customer_recommendations.model_version is 'ml.model_registry.model_version that produced it.';

create table mart.similar_products (
    business_date date not null,
    product_id text not null,
    rank integer not null,
    similar_product_id text not null,
    similarity double precision not null,
    model_version text not null,
    primary key (product_id, rank)
);
comment on table mart.similar_products is
    'For each product, its most similar products (item-item cosine over customers, champion''s item_knn).';

create table mart.bought_together (
    business_date date not null,
    product_id text not null,
    rank integer not null,
    other_product_id text not null,
    support double precision not null,
    confidence double precision not null,
    lift double precision not null,
    model_version text not null,
    primary key (product_id, rank)
);
comment on table mart.bought_together is
    'Association rules product -> other product from shared baskets (sessions, receipts): support = share of '
    'baskets with both, confidence = P(other | product), lift = confidence / P(other). Ranked by lift.';

create table mart.customer_segments (
    business_date date not null,
    customer_id text not null,
    segment text not null,
    recency_days integer not null,
    frequency integer not null,
    monetary numeric(14, 2) not null,
    web_share double precision not null,
    mobile_share double precision not null,
    social_share double precision not null,
    store_share double precision not null,
    primary key (customer_id)
);
comment on table mart.customer_segments is
    'k-means segments on recency, frequency, monetary value (EUR) and channel mix over the last 90 days; '
    'segment names are matched to the previous day''s centroids so they stay stable.';

create table mart.channel_daily (
    event_date date not null,
    channel text not null,
    customers integer not null,
    sessions integer not null,
    events integer not null,
    orders integer not null,
    revenue numeric(14, 2) not null,
    conversion double precision not null,
    primary key (event_date, channel)
);
comment on table mart.channel_daily is
    'Per channel and event day: distinct customers, sessions (web/mobile sessions, store receipts, social '
    'interactions), events, orders (sessions with a purchase), revenue in EUR, conversion = orders / sessions.';

create table mart.model_performance (
    business_date date not null,
    run_id text not null,
    model_name text not null,
    metric text not null,
    k integer not null,
    value double precision not null,
    is_champion boolean not null,
    primary key (run_id, model_name, metric, k)
);
comment on table mart.model_performance is
    'Every model''s and fusion variant''s holdout metrics per retraining day; is_champion marks the champion''s run.';

create table mart.publish_log (
    business_date date not null,
    table_name text not null,
    model_version text,
    rows_published bigint not null,
    swap_lock_ms double precision not null,
    published_at timestamptz not null default now(),
    primary key (business_date, table_name, published_at)
);
comment on table mart.publish_log is 'What was published when, by which model version, with row counts and swap lock time.';

create table mart.customer_recommendations_history (like mart.customer_recommendations) partition by list (business_date);
create table mart.customer_segments_history (like mart.customer_segments) partition by list (business_date);
comment on table mart.customer_recommendations_history is
    'What mart.customer_recommendations held after each day''s publish (partition per business_date).';
comment on table mart.customer_segments_history is
    'What mart.customer_segments held after each day''s publish (partition per business_date).';

create table ml.segment_centroids (
    business_date date not null,
    segment text not null,
    centroid double precision[] not null,
    primary key (business_date, segment)
);
comment on table ml.segment_centroids is 'Standardised k-means centroids per published day: tomorrow''s names match these.';

create table ml.recommendation_batches (
    business_date date not null,
    batch integer not null,
    customer_id text not null,
    rank integer not null,
    product_id text not null,
    score double precision not null,
    reason text not null,
    contributing_models text[] not null,
    model_version text not null
);
create index recommendation_batches_key on ml.recommendation_batches (business_date, batch);
comment on table ml.recommendation_batches is
    'Scored recommendations per (business_date, batch), written by the publish DAG''s mapped scoring tasks.';
