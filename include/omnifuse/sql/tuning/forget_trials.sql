-- The trials of one run and base model, before they are written again (a re-run of train_<model>).
delete from ml.tuning_trials where run_id = %(run_id)s and model_name = %(model_name)s
