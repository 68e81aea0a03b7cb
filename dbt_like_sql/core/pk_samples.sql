-- Plasma upadacitinib samples (single-center PK substudy: 24 h after the previous dose, at
-- the follow-up endoscopy) with the day of the sample relative to the UPA start.
SELECT
    k.center, k.patient_id, k.sample_date,
    date_diff('day', p.upa_start_date, k.sample_date) AS day,
    k.sample_time, k.hours_since_last_dose, k.upa_ng_ml, k.assay
FROM reconciled.pk_samples k
JOIN reconciled.patients p ON p.center = k.center AND p.patient_id = k.patient_id
ORDER BY k.center, k.patient_id, k.sample_date
