-- The labels query of stages.reconcile (labels.query_file in wavepipe.yaml).
-- One row per artifact: its id (a WFDB record folder, e.g. 3000003) and its label; every other
-- column selected here reaches process_func as a key of its row and encode_data as a key of its
-- instance. Rows without a label are left out. The sample database (labels.sqlite) has the table
-- waveform_labels(artifact_id, label, patient_id, group_id).
SELECT artifact_id, label, patient_id
FROM waveform_labels
WHERE label IS NOT NULL
ORDER BY artifact_id
