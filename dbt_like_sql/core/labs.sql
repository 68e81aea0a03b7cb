-- Laboratory results in canonical units (converted at extraction), with the detection-limit
-- qualifier kept and the study's normal range from the CRF.
SELECT
    l.center, l.patient_id, l.sample_date,
    date_diff('day', p.upa_start_date, l.sample_date) AS day,
    l.test, l.value, l.qualifier, l.unit,
    t.normal_low, t.normal_high
FROM reconciled.labs l
JOIN reconciled.patients p ON p.center = l.center AND p.patient_id = l.patient_id
LEFT JOIN ref.lab_tests t ON t.test = l.test
ORDER BY l.center, l.patient_id, l.sample_date, l.test
