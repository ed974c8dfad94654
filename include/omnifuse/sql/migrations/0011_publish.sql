-- Publishing: fallbacks for every known customer, explanations with evidence and per-model contributions,
-- returns in channel metrics, a monotonic publish guard and idempotent scoring batches.

-- scoring batches: one row per (business_date, customer_id, rank), whatever retries or concurrent copies do
delete from ml.recommendation_batches as t
where t.ctid not in (select min(ctid) from ml.recommendation_batches group by business_date, customer_id, rank);
alter table ml.recommendation_batches
    add column evidence_product_id text,
    add column contribution_models text[],
    add column contribution_weights double precision[],
    add column contribution_scores double precision[],
    add constraint recommendation_batches_one_row unique (business_date, customer_id, rank);
comment on column ml.recommendation_batches.evidence_product_id is
    'The customer''s product that led to the recommendation (similar to it, or bought with it), if any.';
comment on column ml.recommendation_batches.contribution_models is
    'Base models of the fused model, in the order of contribution_weights and contribution_scores.';

-- recommendations: personalised or a labelled fallback, with the evidence product
alter table mart.customer_recommendations
    add column source text not null default 'personalised'
        check (source in ('personalised', 'fallback_segment', 'fallback_channel', 'fallback_store',
                          'fallback_popular')),
    add column evidence_product_id text;
alter table mart.customer_recommendations_history
    add column source text not null default 'personalised',
    add column evidence_product_id text;
comment on table mart.customer_recommendations is
    'Top-K recommendations for every known customer (grain: customer_id, rank): personalised by the champion '
    'model, or a labelled fallback for customers without enough history. Business rules applied: in stock, '
    'not already bought unless repeatable, capped per category.';
comment on column mart.customer_recommendations.source is
    'personalised (the champion model) or the fallback used for a customer without enough history: '
    'fallback_segment (favourites of the customer''s segment), fallback_channel (of their main channel), '
    'fallback_store (of their home store) or fallback_popular (of all customers).';
comment on column mart.customer_recommendations.evidence_product_id is
    'The customer''s own product that led to this recommendation (similar to it, or often bought with it); '
    'null when the evidence is popularity.';
comment on column mart.customer_recommendations.reason is
    'Why, naming its evidence: "because you bought/viewed <product>", "often bought with <product>", '
    '"popular in your segment (<segment>)", ...';
comment on column mart.customer_recommendations.score is
    'Fused score after business rules, non-increasing with rank; for fallback rows 1 / rank.';
comment on column mart.customer_recommendations.contributing_models is
    'Base models whose top candidates included it (empty for fallback rows).';

create table mart.recommendation_contributions (
    business_date date not null,
    customer_id text not null,
    rank integer not null,
    product_id text not null,
    model_name text not null,
    weight double precision not null,
    normalised_score double precision not null,
    contribution double precision not null,
    method text not null,
    model_version text not null,
    primary key (customer_id, rank, model_name)
);
comment on table mart.recommendation_contributions is
    'Each base model''s contribution to a personalised recommendation''s fused score (grain: customer_id, '
    'rank, model_name): contribution = weight x normalised_score, before business rules. Joins '
    'mart.customer_recommendations on (customer_id, rank). Fallback rows have none.';
comment on column mart.recommendation_contributions.weight is
    'The model''s weight in the fusion: the learned blend weight (linear), 1 / number of models (equal, and '
    'stacked, whose ranker has no per-model weight), or 1 (rrf).';
comment on column mart.recommendation_contributions.normalised_score is
    'The model''s score for this customer and product, z-scored over the catalog per customer '
    '(rrf: 1 / (60 + the model''s rank), 0 outside its top candidates).';
comment on column mart.recommendation_contributions.contribution is 'weight x normalised_score.';
comment on column mart.recommendation_contributions.method is 'How weight and normalised_score were obtained.';

-- channel metrics: gross sales, returns and net revenue
alter table mart.channel_daily
    add column gross_sales numeric(14, 2) not null default 0,
    add column returns numeric(14, 2) not null default 0,
    add column net_revenue numeric(14, 2) not null default 0;
comment on table mart.channel_daily is
    'Per channel and event day (usable dates only): distinct customers, sessions (web/mobile sessions, store '
    'receipts, social interactions), events, orders (sessions with a purchase), gross sales, returns and net '
    'revenue in EUR, conversion = orders / sessions.';
comment on column mart.channel_daily.gross_sales is 'Revenue of purchases (EUR).';
comment on column mart.channel_daily.returns is 'Revenue given back by returns (EUR, positive).';
comment on column mart.channel_daily.net_revenue is 'gross_sales - returns (EUR).';
comment on column mart.channel_daily.revenue is 'Same as net_revenue (kept for existing reports).';

-- publish log: live or history only (monotonic guard), and customer coverage
alter table mart.publish_log
    add column live boolean not null default true,
    add column note text,
    add column customers_known integer,
    add column personalised_share double precision,
    add column fallback_share double precision;
comment on column mart.publish_log.live is
    'false when an older business date was published while a newer one was live: only its history '
    'partitions were written (force the run to swap it in).';
comment on column mart.publish_log.customers_known is 'Known customers (core.customers) at publish time.';
comment on column mart.publish_log.personalised_share is
    'Share of known customers with personalised recommendations (row of mart.customer_recommendations).';
comment on column mart.publish_log.fallback_share is
    'Share of known customers with a fallback list (row of mart.customer_recommendations).';
