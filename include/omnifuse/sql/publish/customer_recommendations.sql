-- customer_recommendations: the scored batches of a business date as the next mart table.
-- Grain: one row per (customer_id, rank). Parameters: business_date.
insert into {next} (business_date, customer_id, rank, product_id, score, reason, contributing_models, model_version)
select business_date, customer_id, rank, product_id, score, reason, contributing_models, model_version
from ml.recommendation_batches
where business_date = %(business_date)s
