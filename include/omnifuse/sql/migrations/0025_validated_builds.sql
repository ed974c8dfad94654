-- Issue 23 (finding 1): verdicts per build, not per business date.
--
-- core.interactions is the working build: a run rebuilds its window of event dates there, and its core gate
-- judges that build. Readers never see it: a core gate that passes promotes the event dates it judged into
-- core.validated_interactions (same columns, one list partition per event date), in the transaction that records
-- its verdict and under the interactions lock that builds take, so the rows promoted are the rows judged.
-- Until a run's gate passes, and for good when it fails, readers keep the previous validated build: no date
-- drops out of core.usable_dates while a run sits between its build and its gate, and a re-run of an old date
-- that fails its gate hides nothing.
--
-- core.usable_dates: event dates whose validated build holds the date's own arrival batch (own_batch: the date's
-- staging gate had passed when the build was promoted; a build reads every passed arrival batch), once the
-- date's own run (business date = event date) has validated a build of it (own_run_validated, kept once true).
-- A date whose own run never passed its gates (blocked at staging, or failing its core gate) stays unusable even
-- when a later run's gate judged its partition; so does the day after a run's business date, which holds only
-- clock-skewed events until its own run. A date whose delivery is re-run and blocked at staging keeps its
-- validated build until a later run's build, without that batch, is promoted: then it is unusable.

create table core.validated_interactions (
    like core.interactions including defaults including constraints
) partition by list (event_date);
comment on table core.validated_interactions is
    'The last build of each event date of core.interactions that a core gate validated (same columns and grain: '
    'channel, event_key). Promoted per event date by the core gate of the run that judged it; read through '
    'core.usable_interactions.';

create table core.validated_builds (
    event_date date primary key,
    business_date date not null,
    rows_validated integer not null,
    own_batch boolean not null,
    own_run_validated boolean not null,
    validated_at timestamptz not null default now()
);
comment on table core.validated_builds is
    'One row per event date with a validated build in core.validated_interactions: the business date whose core '
    'gate promoted it, its row count, whether it holds the date''s own arrival batch (own_batch) and whether the '
    'date''s own run has validated a build of it (own_run_validated).';

-- what was usable under the old definition becomes the first validated build
do $$
declare
    day date;
    part text;
begin
    for day in select event_date from core.usable_dates loop
        part := 'validated_interactions_p' || to_char(day, 'YYYYMMDD');
        execute format('create table core.%I partition of core.validated_interactions for values in (%L)',
                       part, day);
        execute format('insert into core.%I select * from core.interactions where event_date = %L', part, day);
    end loop;
end
$$;
insert into core.validated_builds (event_date, business_date, rows_validated, own_batch, own_run_validated)
select u.event_date, b.business_date, b.rows_built, true, true
from core.usable_dates as u
join core.interaction_builds as b using (event_date);

create or replace view core.usable_dates as
select event_date
from core.validated_builds
where own_batch and own_run_validated;
comment on view core.usable_dates is
    'Event dates whose validated build readers may use: promoted by a passed core gate, holding the date''s own '
    'arrival batch, and validated at least once by the date''s own run. Every reader of core.interactions filters on it (through core.usable_interactions).';

create or replace view core.usable_interactions as
select validated.*
from core.validated_interactions as validated
where validated.event_date in (select event_date from core.usable_dates);
comment on view core.usable_interactions is
    'The validated build of every usable date (core.validated_interactions restricted to core.usable_dates): what '
    'training, segments, channel metrics and the dashboard read. A build its gate has not passed is never here.';
