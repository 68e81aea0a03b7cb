-- Treatment episodes with the drug's class, mechanism group (study.yaml dtt.mechanism_groups)
-- and timing relative to UPA treatment. Two episodes overlap when they share a day (both
-- ends inclusive; an ongoing episode runs to the last follow-up) - STUDY.md.
SELECT
    m.center, m.patient_id, m.drug, d.drug_class, d.mechanism, d.advanced,
    m.start_date, m.stop_date, m.stop_reason, m.last_dose_date,
    date_diff('day', p.upa_start_date, m.start_date) AS start_day,
    date_diff('day', p.upa_start_date, m.stop_date) AS stop_day,
    coalesce(m.stop_date, p.last_followup_date) AS end_date,
    CASE WHEN coalesce(m.stop_date, p.last_followup_date) < p.upa_start_date THEN 'before'
         WHEN m.start_date > coalesce(p.upa_stop_date, p.last_followup_date) THEN 'after'
         ELSE 'overlapping' END AS timing
FROM reconciled.medications m
JOIN reconciled.patients p ON p.center = m.center AND p.patient_id = m.patient_id
LEFT JOIN ref.drugs d ON d.drug = m.drug
ORDER BY m.center, m.patient_id, m.start_date, m.drug
