-- customer_recommendations: one customer's published recommendations with product details and reasons.
-- Parameters: customer_id.
select r.rank, r.product_id, p.name, p.category, p.price, round(r.score::numeric, 4) as score, r.reason,
       r.contributing_models, r.model_version, r.business_date
from mart.customer_recommendations as r
left join core.products as p using (product_id)
where r.customer_id = %(customer_id)s
order by r.rank
