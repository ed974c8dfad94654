-- load_audit: the audit rows of the given business dates (all dates when dates is null), in load order.
with

audit as (
    select *
    from ops.load_audit
    where %(dates)s::date[] is null or business_date = any(%(dates)s::date[])
),

final as (
    select
        business_date, channel, files, lines_read, rows_staged, rows_quarantined, duplicates_dropped,
        quarantine_by_reason, notes, loaded_at
    from audit
)

select * from final
order by business_date, array_position(
    array['catalog', 'store_locations', 'fx_rates', 'crm', 'web', 'mobile', 'social', 'store'], channel), channel
