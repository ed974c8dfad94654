-- The accounting tail of every ingest statement (sql/ingest/*.sql), composed after the source's `classified`
-- CTE by omnifuse.staging_sql. Placeholders are identifiers (or SQL composed from identifiers and from the
-- source's own file), never values. `classified` holds one row per landed line: the lineage (_arrival_date,
-- _source_file, _line_no), the dedup key (never null on a valid line), `reason` (null when the line is valid),
-- `line` and `detail` for the quarantine, and whatever the source's `staged` CTE reads from `valid`.
-- Returns one row: rows_staged, duplicates_dropped, quarantine_by_reason (jsonb reason -> count); ingest checks
-- that the lines read are rows_staged + duplicates_dropped + the quarantined lines.

-- duplicates without sorting every line: the keys seen more than once among the valid lines (few), and
-- the first copy (by file, line) of each; every other valid line is staged as it is
repeated as (
    select {key} from classified where reason is null group by {key} having count(*) > 1
),

first_copies as (
    select distinct on ({key}) {key}, _source_file, _line_no
    from classified
    where reason is null and ({key}) in (select {key} from repeated)
    order by {key}, _source_file, _line_no
),

valid as (
    select
        classified.*,
        first_copies.{first_key} is null
        or (classified._source_file, classified._line_no) = (first_copies._source_file, first_copies._line_no)
            as is_first
    from classified
    left join first_copies on {same_key}
    where classified.reason is null
),

quarantined as (
    insert into {quarantine} (_arrival_date, _source_file, _line_no, line, reason, detail)
    select _arrival_date, _source_file, _line_no, line, reason, detail
    from classified
    where reason is not null
    returning reason
),

{staged}

final as (
    select
        (select count(*) from staged) as rows_staged,
        (select count(*) from classified where reason is null) - (select count(*) from staged) as duplicates_dropped,
        (select coalesce(jsonb_object_agg(reason, n), '{{}}'::jsonb)
         from (select reason, count(*) as n from quarantined group by reason) as by_reason) as quarantine_by_reason
)

select * from final
