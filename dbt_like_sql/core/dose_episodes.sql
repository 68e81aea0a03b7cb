-- UPA dose episodes (single-center study: 45 mg induction, 30 mg maintenance, 15 mg after
-- endoscopic remission) with the day of each change relative to the UPA start.
SELECT
    d.center, d.patient_id, d.start_date,
    date_diff('day', p.upa_start_date, d.start_date) AS day,
    d.dose_mg, d.reason
FROM reconciled.dose_episodes d
JOIN reconciled.patients p ON p.center = d.center AND p.patient_id = d.patient_id
ORDER BY d.center, d.patient_id, d.start_date
