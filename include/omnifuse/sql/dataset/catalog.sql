-- catalog: the current products with the features the models use. Grain: one row per product.
select product_id, name, category, brand, price, stock, repeatable, in_store
from core.products
order by product_id
