-- recommendation_contributions: why each personalised recommendation of one customer is there: every base model's
-- weight x normalised score behind its fused score (fallback rows have none). Grain: (rank, model_name).
-- Parameters: customer_id.
select rank, product_id, model_name, weight, normalised_score, contribution, method
from mart.recommendation_contributions
where customer_id = %(customer_id)s
order by rank, contribution desc, model_name
