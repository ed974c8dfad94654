-- recommendation_contributions: each base model's weight x normalised score behind every personalised
-- recommendation. Grain: (customer_id, rank, model_name). Parameters: business_date, model_version.
insert into {next} (business_date, customer_id, rank, product_id, model_name, weight, normalised_score,
                    contribution, method, model_version)
with

batches as (
    select *
    from ml.recommendation_batches
    where business_date = %(business_date)s and model_version = %(model_version)s
        and contribution_models is not null
),

model as (
    select fusion_variant
    from ml.model_registry
    where model_version = %(model_version)s
),

final as (
    select
        b.business_date, b.customer_id, b.rank, b.product_id, c.model_name, c.weight, c.normalised_score,
        c.weight * c.normalised_score as contribution,
        case m.fusion_variant
            when 'linear' then 'learned blend weight x the model''s per-customer z-score (standardised as fitted)'
            when 'equal' then 'equal weight x the model''s per-customer z-score'
            when 'rrf' then 'weight 1 x 1 / (60 + the model''s rank) within its top candidates'
            when 'single' then 'weight 1 x the served model''s per-customer z-score'
            when 'stacked' then 'weight 1 x the ranker''s linear terms of the model''s z-score and reciprocal rank'
            when 'rerank' then 'weight 1 x the re-ranker''s terms: half its logistic terms of this scorer''s features (standardised as fitted), or half its trees'' log-odds (boosted_trees)'
            else 'equal weight x the model''s per-customer z-score'
        end as method,
        b.model_version
    from batches as b
    left join model as m on true
    cross join lateral unnest(b.contribution_models, b.contribution_weights, b.contribution_scores)
        as c (model_name, weight, normalised_score)
)

select * from final
