-- The `staged` CTE of a source that declares its staged columns (Source.staged_columns): the first copy of
-- every valid line, those columns of `classified` as they are, into the source's target table.
staged as (
    insert into {target} ({columns})
    select {columns}
    from valid
    where is_first
    returning 1
),
