-- load_volumes: lines read, staged, quarantined and duplicates per channel and business date (last N days
-- loaded), with the quarantine rate = quarantined / lines read. Grain: (business_date, channel). Parameters: days.
with

volumes as (
    select business_date, channel, files, lines_read, rows_staged, rows_quarantined, duplicates_dropped
    from mart.load_volume_daily(%(days)s::int)
),

final as (
    select
        *,
        case when lines_read > 0 then rows_quarantined::double precision / lines_read else 0 end
            as quarantine_rate
    from volumes
)

select * from final
order by business_date, channel
