-- customer_recommendations: one customer's published recommendations with product details and reasons.
-- Parameters: customer_id. Read as the BI role through mart.customer_recommendation_details (0012 migration).
select rank, product_id, name, category, price, score, reason, contributing_models, model_version, business_date
from mart.customer_recommendation_details(%(customer_id)s)
