-- Adverse events; treatment-emergent = onset from day 0 to N days after the UPA stop date
-- (N = study.yaml safety.treatment_emergent_days_after_stop), any onset from day 0 while ongoing.
WITH s AS (
    SELECT max(CASE WHEN key = 'safety.treatment_emergent_days_after_stop' THEN CAST(value AS INTEGER) END) AS te_days
    FROM ref.settings
)
SELECT
    e.center, e.patient_id, e.onset_date,
    date_diff('day', p.upa_start_date, e.onset_date) AS day,
    e.term, e.serious, e.led_to_discontinuation, e.severity, e.led_to_dose_reduction,
    (e.onset_date >= p.upa_start_date
        AND (p.upa_stop_date IS NULL OR e.onset_date <= p.upa_stop_date + s.te_days)) AS treatment_emergent
FROM reconciled.adverse_events e
JOIN reconciled.patients p ON p.center = e.center AND p.patient_id = e.patient_id
CROSS JOIN s
ORDER BY e.center, e.patient_id, e.onset_date
