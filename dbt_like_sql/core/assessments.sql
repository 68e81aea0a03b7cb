-- Visits with disease-activity scores. HBI = sum of its five items (NULL unless all are
-- present); adapted Mayo = stool + bleeding + endoscopic subscore (0-9); partial Mayo =
-- stool + bleeding + physician global assessment (STUDY.md "Endpoints").
SELECT
    a.center, a.patient_id, a.visit_date,
    date_diff('day', p.upa_start_date, a.visit_date) AS day,
    a.hbi_wellbeing, a.hbi_pain, a.hbi_liquid_stools, a.hbi_mass, a.hbi_complications,
    a.hbi_wellbeing + a.hbi_pain + a.hbi_liquid_stools + a.hbi_mass + a.hbi_complications AS hbi_total,
    a.mayo_stool, a.mayo_bleeding, a.mayo_pga, a.mayo_endo,
    a.mayo_stool + a.mayo_bleeding + a.mayo_endo AS adapted_mayo,
    a.mayo_stool + a.mayo_bleeding + a.mayo_pga AS partial_mayo,
    a.ses_cd, a.rutgeerts, a.upa_dose_mg,
    (a.mayo_endo IS NOT NULL OR a.ses_cd IS NOT NULL OR a.rutgeerts IS NOT NULL) AS has_endoscopy
FROM reconciled.assessments a
JOIN reconciled.patients p ON p.center = a.center AND p.patient_id = a.patient_id
ORDER BY a.center, a.patient_id, a.visit_date
