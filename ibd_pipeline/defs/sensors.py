"""Automation: the file-drop sensor and the pooled study run after a center's run.

What has been processed is one notion for the sensor and the headless runner
(``ibd-pipeline run``): every center run is tagged with the archive position
(``ibd/archive_seq``, the manifest's ``seq`` of the newest accepted delivery) it read,
and the sensor requests a center only when its archive holds a newer delivery than any
run of that center in the instance and than the analysts' published snapshot holds
(``analytics.deliveries``). Starting the UI after headless runs, or with a new Dagster
instance on a data directory that has been run, requests nothing."""


import json

import dagster as dg

from ..intake import accepted_deliveries, take_complete_files
from ..store.snapshot import published_archive_seq
from .resources import StudyResource


CENTER_TAG = "ibd/center"
TRIGGER_TAG = "ibd/trigger"
ARCHIVE_SEQ_TAG = "ibd/archive_seq"


def processed_seq(instance, job_name: str, center: str, look_back: int = 50) -> int:
    """The newest archive position a run of ``job_name`` for ``center`` was started
    with (any outcome: a failed run is not retried by the sensor; a new delivery is),
    0 when there is none."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, tags={CENTER_TAG: center}), limit=look_back
    )
    seqs = [int(r.dagster_run.tags[ARCHIVE_SEQ_TAG]) for r in records if r.dagster_run.tags.get(ARCHIVE_SEQ_TAG, "").isdigit()]
    return max(seqs, default=0)


def build_sensors(center_job, study_job):
    @dg.sensor(job=center_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
    def inbox_sensor(context: dg.SensorEvaluationContext, study: StudyResource):
        """Watches every center's inbox. A file is taken only when complete (size and
        modification time unchanged since the previous tick); it is archived under its
        SHA-256 and that center's extraction is requested. Identical files are recorded
        and skipped; badly named files are rejected with a note in the outbox."""
        cursor = json.loads(context.cursor) if context.cursor else {}
        paths = study.paths()
        settle = float(study.settings()["ingestion"]["settle_seconds"])
        requests, new_cursor, notes = [], {}, []
        from ..ingest.names import delivery_name_check

        check = delivery_name_check(study.crf())
        for center, profile in study.centers().items():
            paths.ensure([center])
            state = cursor.get(center, {})
            outcomes, snapshot = take_complete_files(paths, profile, state.get("snapshot"), settle, check)
            notes += [f"{center}/{o.file_name}: {o.status} {o.message}".strip() for o in outcomes]
            # the newest accepted delivery in the archive, not only this tick's: a tick that
            # archived a file and then failed is made good by the next one
            accepted = accepted_deliveries(paths, center)
            seq = accepted[-1].seq if accepted else 0
            done = state.get("seq", 0)
            if seq > done:  # runs of this instance; else what the published snapshot already holds
                done = max(done, processed_seq(context.instance, center_job.name, center))
            if seq > done:  # (a new DAGSTER_HOME on a data directory that has been run)
                done = max(done, published_archive_seq(paths.snapshot, center))
            if seq > done:
                requests.append(dg.RunRequest(
                    run_key=f"{center}:{seq}", partition_key=center,
                    tags={CENTER_TAG: center, TRIGGER_TAG: "sensor", ARCHIVE_SEQ_TAG: str(seq)},
                ))
            new_cursor[center] = {"snapshot": snapshot, "seq": seq}
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor))
        context.update_cursor(json.dumps(new_cursor))
        return dg.SkipReason("; ".join(notes) if notes else "no complete new files in the inboxes")

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[center_job],
        request_job=study_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def study_after_center_run(context: dg.RunStatusSensorContext):
        """After a center's data passed its gates, rebuild the pooled study - once: a study
        run still waiting in the queue will read the newest data when it starts. A headless
        center run (``ibd-pipeline run``) is followed by its own study run: skipped here."""
        if context.dagster_run.tags.get(TRIGGER_TAG) == "cli":
            return dg.SkipReason(f"run {context.dagster_run.run_id} was headless; it ran the study itself")
        waiting = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name=study_job.name, statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]),
            limit=1,
        )
        if waiting:
            return dg.SkipReason(f"study run {waiting[0].dagster_run.run_id} is already waiting")
        return dg.RunRequest(run_key=f"study-after-{context.dagster_run.run_id}")

    return [inbox_sensor, study_after_center_run]
