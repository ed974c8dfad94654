-- Store-local till times around a daylight-saving change: a time in the fall-back hour names two instants
-- (ambiguous), a time in the spring-forward gap names none (nonexistent). stg_store_sales.sql keeps
-- PostgreSQL's conversion for both and flags the line, so a reader can tell a guessed instant from a known one.

alter table staging.store_sales
    add column local_time_note text check (local_time_note in ('ambiguous', 'nonexistent'));

comment on column staging.store_sales.local_time_note is
    'null when sold_at_local names exactly one instant in the store''s time zone. ''ambiguous'': it falls in a '
    'repeated (fall-back) hour; event_ts is the later instant, because PostgreSQL gives an ambiguous local time '
    'the UTC offset that prevailed just after the transition (standard time: 2026-10-25 02:30 Europe/Paris '
    'becomes 01:30 UTC). ''nonexistent'': it falls in a skipped (spring-forward) gap; event_ts uses the UTC '
    'offset that prevailed just before the transition (2026-03-29 02:30 Europe/Paris becomes 01:30 UTC, which '
    'reads back as 03:30 local). Rule: PostgreSQL documentation, appendix B.2 "Handling of Invalid or '
    'Ambiguous Timestamps".';
