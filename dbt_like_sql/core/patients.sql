-- One row per screened patient, pooled across centers (round A with adjudications applied).
-- Ages in completed years on the date in question (STUDY.md "Time points and windows").
WITH s AS (
    SELECT
        max(CASE WHEN key = 'baseline.montreal_age.A1_below' THEN CAST(value AS DOUBLE) END) AS a1_below,
        max(CASE WHEN key = 'baseline.montreal_age.A3_above' THEN CAST(value AS DOUBLE) END) AS a3_above
    FROM ref.settings
),
p AS (
    SELECT
        r.*,
        coalesce(r.upa_stop_date, r.last_followup_date) AS treatment_end_date,
        date_diff('year', r.birth_date, r.upa_start_date)
            - CASE WHEN strftime(r.upa_start_date, '%m%d') < strftime(r.birth_date, '%m%d') THEN 1 ELSE 0 END AS age_at_upa_start,
        date_diff('year', r.birth_date, r.diagnosis_date)
            - CASE WHEN strftime(r.diagnosis_date, '%m%d') < strftime(r.birth_date, '%m%d') THEN 1 ELSE 0 END AS age_at_diagnosis
    FROM reconciled.patients r
)
SELECT
    p.center, p.patient_id, p.sex, p.birth_date, p.diagnosis, p.diagnosis_date,
    p.cd_location, p.cd_upper_gi, p.cd_behavior, p.cd_perianal, p.uc_extent,
    p.complex_perianal, p.ileal_pouch, p.pouchitis_chronic_ab_refractory, p.psychosocial_comorbidity,
    p.smoking, p.height_cm, p.weight_kg,
    CASE WHEN p.height_cm > 0 AND p.weight_kg > 0 THEN p.weight_kg / ((p.height_cm / 100.0) ^ 2) END AS bmi,
    p.eim_eye, p.eim_skin, p.eim_joint, p.eim_other,
    (coalesce(p.eim_eye, false) OR coalesce(p.eim_skin, false) OR coalesce(p.eim_joint, false) OR coalesce(p.eim_other, false)) AS eim_any,
    p.pregnant_or_breastfeeding, p.serious_infection_at_start, p.malignancy_history,
    p.imaging_penetrating, p.imaging_penetrating_site,
    p.upa_start_date, p.upa_stop_date, p.upa_stop_reason, p.last_followup_date,
    p.age_at_upa_start, p.age_at_diagnosis,
    CASE WHEN p.age_at_diagnosis < s.a1_below THEN 'A1'
         WHEN p.age_at_diagnosis > s.a3_above THEN 'A3'
         WHEN p.age_at_diagnosis IS NOT NULL THEN 'A2' END AS montreal_age,
    date_diff('day', p.diagnosis_date, p.upa_start_date) / 365.25 AS disease_duration_years,
    p.treatment_end_date,
    date_diff('day', p.upa_start_date, p.treatment_end_date) AS exposure_days,
    p.upa_stop_date IS NOT NULL AS discontinued
FROM p CROSS JOIN s
ORDER BY p.center, p.patient_id
