-- Real shops' data: returns as events of their own, non-product till lines, and one definition of the event
-- dates every reader of core.interactions may use.

-- A till line with a negative quantity is a return or cancellation: a `return` event with signed revenue.
alter table core.interactions drop constraint if exists interactions_event_type_check;
alter table core.interactions add constraint interactions_event_type_check
    check (event_type in ('view', 'click', 'add_to_cart', 'purchase', 'return', 'like', 'share', 'comment',
                          'review'));
comment on column core.interactions.event_type is
    'view, click, add_to_cart, purchase, return (a returned or cancelled purchase: negative quantity and '
    'revenue), like, share, comment or review.';
comment on column core.interactions.revenue is
    'Signed revenue in EUR: positive for purchases, negative for returns, 0 for other events.';

-- Postage, fees, bank charges and manual adjustments are staged (they are real money) but are not products:
-- they never reach core.interactions. Which SKUs they are is the setting OMNIFUSE_NON_PRODUCT_SKUS.
alter table staging.store_sales add column if not exists line_kind text not null default 'product'
    check (line_kind in ('product', 'non_product'));
comment on column staging.store_sales.line_kind is
    'product, or non_product for postage / fee / adjustment lines (OMNIFUSE_NON_PRODUCT_SKUS): staged, '
    'counted in mart.channel_daily, never an interaction.';

-- Usable event dates: the one definition every reader of core.interactions goes through (training, segments,
-- channel metrics, the dashboard). An event date is usable when
--   1. the staging and the core gate of that business date both passed (their latest verdict), and
--   2. the run that last rebuilt its partition (core.interaction_builds.business_date) passed its core gate,
--      which validates every partition that run rebuilt.
create view core.usable_dates as
with

verdicts as (
    select business_date, gate, passed from ops.quality_status
),

final as (
    select builds.event_date
    from core.interaction_builds as builds
    where exists (
            select 1 from verdicts as v
            where v.business_date = builds.event_date and v.gate = 'staging' and v.passed)
        and exists (
            select 1 from verdicts as v
            where v.business_date = builds.event_date and v.gate = 'core' and v.passed)
        and exists (
            select 1 from verdicts as v
            where v.business_date = builds.business_date and v.gate = 'core' and v.passed)
)

select * from final;
comment on view core.usable_dates is
    'Event dates of core.interactions that passed their quality gates (staging and core of the date, and the '
    'core gate of the run that last rebuilt the partition). Every reader of core.interactions filters on it.';

create view core.usable_interactions as
select interactions.*
from core.interactions as interactions
where interactions.event_date in (select event_date from core.usable_dates);
comment on view core.usable_interactions is
    'core.interactions restricted to core.usable_dates: what training, segments, channel metrics and the '
    'dashboard read. A date blocked by a gate (or never validated) is invisible here.';

-- The catalog may be priced in any currency that core.fx_rates knows: its EUR price is kept beside it, and
-- every price check of the staging SQL compares EUR with EUR.
alter table core.product_snapshots add column if not exists price_eur numeric;
update core.product_snapshots set price_eur = price where price_eur is null and currency = 'EUR';
alter table core.products add column if not exists price_eur numeric;
update core.products set price_eur = price where price_eur is null and currency = 'EUR';
comment on column core.products.price_eur is 'The catalog price converted to EUR with the rate of its snapshot date.';
