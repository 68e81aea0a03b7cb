-- IBD surgeries; bowel_resection = the CRF procedure is a bowel resection AND it was IBD-related.
SELECT
    s.center, s.patient_id, s.surgery_date, s.procedure, s.ibd_related,
    (coalesce(r.bowel_resection, false) AND coalesce(s.ibd_related, false)) AS bowel_resection,
    (coalesce(r.total_colectomy, false) AND coalesce(s.ibd_related, false)) AS total_colectomy,
    date_diff('day', p.upa_start_date, s.surgery_date) AS day,
    s.surgery_date < p.upa_start_date AS before_upa,
    s.urgency, s.indication
FROM reconciled.surgeries s
JOIN reconciled.patients p ON p.center = s.center AND p.patient_id = s.patient_id
LEFT JOIN ref.procedures r ON r.procedure = s.procedure
ORDER BY s.center, s.patient_id, s.surgery_date
