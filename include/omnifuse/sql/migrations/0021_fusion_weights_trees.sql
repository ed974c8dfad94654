-- The re-ranker's gradient-boosted trees (issue 12) are shown next to its logistic weights: the documentation
-- of ml.fusion_weights says how to read both.

comment on table ml.fusion_weights is
    'Learned blend weights per run and variant: linear, the models'' weights; stacked, the stacker''s '
    'coefficients; rerank, the logistic half''s standardised coefficients per feature and, as trees:<feature>, '
    'each feature''s share of the trees'' split gain (the trees'' shares add up to 1).';
comment on column ml.fusion_weights.feature is
    'A model (linear), a stacker feature (stacked), a re-ranker feature, or trees:<re-ranker feature> for the '
    'share of split gain of the re-ranker''s LightGBM half.';
