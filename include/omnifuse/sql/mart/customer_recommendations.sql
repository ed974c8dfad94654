-- customer_recommendations: the personalised part, from the scored batches of a business date and one model
-- version. Grain: one row per (customer_id, rank). Parameters: business_date, model_version.
insert into {next} (business_date, customer_id, rank, product_id, score, reason, contributing_models, model_version,
                    source, evidence_product_id)
select business_date, customer_id, rank, product_id, score, reason, contributing_models, model_version,
       'personalised', evidence_product_id
from ml.recommendation_batches
where business_date = %(business_date)s and model_version = %(model_version)s
