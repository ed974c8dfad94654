-- The rates a date knows, in one place: the latest core.fx_rates rate on or before the date per currency, and
-- EUR (the reporting currency) always at 1. The staging SQL of every priced source reads it.
create function core.known_rates(p_date date)
returns table (currency text, rate_to_eur numeric)
language sql stable
as $$
    (
        select distinct on (r.currency) r.currency, r.rate_to_eur
        from core.fx_rates as r
        where r.rate_date <= p_date and r.currency <> 'EUR'
        order by r.currency, r.rate_date desc
    )
    union all
    select 'EUR', 1
$$;
comment on function core.known_rates(date) is
    'Per currency, the latest rate to EUR on or before the date (core.fx_rates); EUR is always known at 1.';
