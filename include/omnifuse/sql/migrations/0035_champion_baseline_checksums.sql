-- Trust, round two (issue 23): every shop gets a champion, a registered version's artifacts are anchored in the
-- registry, and tuning is bounded by trials instead of seconds.

alter table ml.model_registry
    add column baseline boolean not null default false,
    add column artifact_checksums jsonb;
comment on column ml.model_registry.baseline is
    'true for a baseline champion: no champion existed and the run''s model did not beat popularity beyond the '
    'noise, so the best single model with the business rules (popularity when nothing beats it) is served; '
    'reason says so. A baseline is replaced, like any champion, only by a challenger that beats it and '
    'popularity beyond the noise.';
comment on column ml.model_registry.artifact_checksums is
    'sha256 of the MANIFEST.json of the version''s fused/ (what publishing serves) and evaluated/ folders, taken '
    'when it was registered; every load of the version checks its manifest against it (null: registered before '
    'migration 0035, checked against its manifest only).';
comment on table ml.model_registry is
    'Every fused model version trained. Exactly one champion (what publishing serves) once a retrain has run: a '
    'challenger replaces it only when it beats the champion and the popularity baseline on the holdout by the '
    'configured margin; when there is no champion yet and the first run is not promoted, a baseline version '
    '(<run_id>_baseline) is served. reason says why a version was promoted, kept back, rejected or served as the '
    'baseline.';
comment on column ml.tuning_trials.status is
    'run: fitted and scored on the validation slice; skipped_budget: beyond the model''s first '
    'OMNIFUSE_TUNING_TRIALS settings of its grid (a count, not seconds: the choice depends on the data and the '
    'seed alone).';
comment on column mart.model_performance.trials_skipped is
    'Settings of the grid beyond OMNIFUSE_TUNING_TRIALS (a count: the choice never depends on the clock).';
