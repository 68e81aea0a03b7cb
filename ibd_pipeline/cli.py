"""`ibd-pipeline`: the command line of the study pipeline.

    ibd-pipeline synth --out DIR --patients N --seed S   synthetic deliveries (+ ground truth)
    ibd-pipeline synth-adjudicate                         a reviewer fills the outbox worklists
    ibd-pipeline run [--center C] [--force]               ingest the inboxes, materialize what changed
    ibd-pipeline rebuild                                  rebuild the warehouse from the archive
    ibd-pipeline verify                                   check archive and warehouse against each other
    ibd-pipeline demo                                     the whole study on synthetic data
    ibd-pipeline query "SQL"                              query the analysts' snapshot (read-only)
    ibd-pipeline ui                                       the Dagster UI (sensor on)
    ibd-pipeline init-key                                 create the pseudonymization key

    ibd-pipeline studies                                  the studies of the project and their folders

The study is --study NAME, else $IBD_STUDY, else the multicenter study (the repository
root); every other study is a folder studies/NAME/ (study.yaml, centers/,
published_figures.yaml). The data directory is --data-dir, else $IBD_DATA_DIR, else the
study's own: ./data for the multicenter study, ./data/studies/NAME for the others.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import config
from .config import PROJECT_ROOT, data_paths, ensure_pseudonym_key, load_centers


def _paths(args):
    return data_paths(args.data_dir)


def synth_study(paths, n_patients: int, seed: int | None, date: str | None = None, truth_dir: Path | None = None,
                out: Path | None = None, discrepancy_share=0.015) -> tuple[Path, Path, str]:
    """The study's synthetic deliveries by its settings' generator (``synth.generator``):
    the multicenter one (three centers' formats, double abstraction) or the single-center
    REDCap one. Returns (inbox root, truth directory, what was written)."""
    settings = config.load_settings()
    out = out or paths.root / "inbox"
    truth_dir = truth_dir or paths.ground_truth
    if (settings.get("synth") or {}).get("generator", "multicenter") == "single_center_redcap":
        from .synth.single_center_deliveries import write_single_center_delivery

        truth = write_single_center_delivery(out, settings, config.load_published(), seed, date, truth_dir)
        return out, truth, f"a REDCap export of the calibrated single-center cohort (center {settings['synth']['center']})"
    from .synth import generate_deliveries

    truth = generate_deliveries(out, n_patients=n_patients, seed=seed if seed is not None else 20250401,
                                discrepancy_share=discrepancy_share, delivery_date=date or "20250401", truth_dir=truth_dir)
    return out, truth, f"synthetic deliveries of {n_patients} screened patients"


def cmd_synth(args) -> int:
    shares = float(args.discrepancy_share)
    per_center = {}
    for item in args.center_share or []:
        c, _, v = item.partition("=")
        per_center[c] = float(v)
    share = {c: per_center.get(c, shares) for c in load_centers()} if per_center else shares
    out = Path(args.out) if args.out else None
    if out is not None and not args.truth_dir:  # beside the inbox root, as before
        args.truth_dir = str(out.parent / "ground_truth")
    out, truth, what = synth_study(_paths(args), args.patients, args.seed, args.date,
                                   Path(args.truth_dir) if args.truth_dir else None, out, share)
    print(f"{what} written under {out}; ground truth in {truth}")
    return 0


def adjudicate_outboxes(paths, truth_dir: Path | None = None) -> list[Path]:
    """Fill the newest worklist of every center's outbox from the ground truth and drop
    it into the center's inbox (the demo's senior reviewer)."""
    from .ingest.names import is_worklist_file
    from .synth import fill_worklist

    truth_dir = truth_dir or paths.ground_truth
    written = []
    for center, profile in load_centers().items():
        out = paths.outbox(center)
        candidates = sorted((p for p in out.iterdir() if p.is_file() and is_worklist_file(profile, p.name)),
                            key=lambda p: p.stat().st_mtime) if out.exists() else []
        if not candidates:
            continue
        written.append(fill_worklist(candidates[-1], center, truth_dir, paths.inbox(center)))
    return written


def cmd_synth_adjudicate(args) -> int:
    paths = _paths(args)
    written = adjudicate_outboxes(paths, Path(args.truth_dir) if args.truth_dir else None)
    for p in written:
        print(f"adjudication file dropped: {p}")
    if not written:
        print("no worklist in any outbox")
    return 0


def cmd_init_key(args) -> int:
    print(ensure_pseudonym_key(_paths(args)))
    return 0


def cmd_run(args) -> int:
    from .runner import run_pipeline

    s = run_pipeline(args.data_dir, centers=args.center or None, settle_seconds=args.settle, force=args.force)
    print("\n".join(s.lines()))
    return s.exit_status


def cmd_rebuild(args) -> int:
    from .runner import rebuild

    s = rebuild(args.data_dir)
    print("\n".join(s.lines()))
    return 0 if s.success else 1


def cmd_confirm(args) -> int:
    """Confirm a held delivery (header-only or far smaller than the current one)."""
    from .loading import confirm_delivery

    try:
        d = confirm_delivery(_paths(args), args.center, args.file_name, by=args.by or "")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.center}: {d.file_name} confirmed; the next run (ibd-pipeline run) applies it")
    return 0


def next_step_lines(paths) -> list[str]:
    """Per center: where the coordinator's status page and workbooks are, what to return
    where, and the next steps of its status page."""
    from .ingest.names import is_worklist_file
    from .outbox_lists import reabstraction_list_name, rejected_list_name
    from .reconcile.worklist import worklist_headers
    from .status_page import next_steps
    from .store import reads
    from .store import warehouse as wh

    out = []
    if not paths.warehouse.exists():
        return out
    con = wh.open_read_only(paths.warehouse)
    try:
        for c, profile in load_centers().items():
            dl = reads.center_rows(con, "analytics.deliveries", c)
            notes = reads.center_rows(con, "analytics.delivery_notes", c)
            n_open, n_resolved = reads.discrepancy_counts(con, c)
            n_rejected = reads.rejected_rows(con, c)
            outbox, inbox = paths.outbox(c), paths.inbox(c)
            wl = sorted(p.name for p in outbox.iterdir() if p.is_file() and is_worklist_file(profile, p.name)) if outbox.is_dir() else []
            h = worklist_headers(profile)
            out.append(f"{c}: status page     {outbox / 'index.html'}")
            if wl and n_open:
                out.append(f"  worklist        {outbox / wl[-1]}: {n_open} open discrepancies - fill in {h['resolved_value']}, "
                           f"{h['reviewer_id']} (and {h['decided_on']}) and save it under the same name into {inbox}/")
            else:
                out.append(f"  worklist        no open discrepancy ({n_resolved} adjudicated)")
            if (outbox / reabstraction_list_name(c)).exists():
                out.append(f"  re-abstraction  {outbox / reabstraction_list_name(c)} (charts for round B)")
            if (outbox / rejected_list_name(c)).exists():
                out.append(f"  rejected rows   {outbox / rejected_list_name(c)}: {n_rejected} row(s) - correct them and deliver "
                           f"the file again, with a new date in its name, into {inbox}/")
            wd = (profile.raw.get("withdrawals") or {})
            if wd.get("files"):
                cols = ", ".join((wd.get("columns") or {}).values())
                name = wd["files"].replace("{yyyymmdd}", "<yyyymmdd>")
                out.append(f"  withdrawal      to remove a patient, put {name} (columns {cols}; record number and reason "
                           f"required) into {inbox}/")
            out += [f"  - {en}" for _zh, en in next_steps(dl, notes, int(n_open), wl)]
    except wh.DatabaseError:
        return out
    finally:
        con.close()
    return out


def cmd_verify(args) -> int:
    from .verify import verify

    r = verify(_paths(args), list(load_centers()))
    print("\n".join(r.lines()))
    return 0 if r.ok else 1


def ui_hint(paths) -> str:
    """The command that opens the UI on this study and data directory: ``make dev`` for the
    default study in its default data directory, else ``ibd-pipeline [--study S]
    [--data-dir D] ui`` (the same supervised ``dagster dev``)."""
    import shlex

    study = config.study_name()
    opts = [] if study == config.DEFAULT_STUDY else ["--study", study]
    if Path(paths.root).resolve() != config.default_data_dir(study).resolve():
        opts += ["--data-dir", str(paths.root)]
    return "make dev" if not opts else " ".join([".venv/bin/ibd-pipeline", *map(shlex.quote, opts), "ui"])


def cmd_demo(args) -> int:
    """Synthetic deliveries -> the whole study (two runs around the reviewer's
    adjudication) -> where the warehouse, the report and the UI are."""
    from .runner import dagster_home, run_pipeline
    from .intake import accepted_deliveries

    paths = _paths(args).ensure()
    os.environ.setdefault("IBD_DATA_DIR", str(paths.root))
    key = ensure_pseudonym_key(paths)
    if not any(accepted_deliveries(paths, c) for c in load_centers()):
        out, _truth, what = synth_study(paths, args.patients, args.seed)
        print(f"{what} written to {out}")
    s1 = run_pipeline(paths.root, settle_seconds=0)
    print("\n".join(s1.lines()))
    dropped = adjudicate_outboxes(paths)
    ok = s1.success
    if dropped:
        print(f"senior reviewer adjudicated {len(dropped)} worklist(s); loading the adjudications")
        s2 = run_pipeline(paths.root, settle_seconds=0)
        print("\n".join(s2.lines()))
        ok = s2.success
    print()
    print(f"pseudonymization key : {key}")
    print(f"working warehouse    : {paths.warehouse}")
    print(f"analysts' snapshot   : {paths.snapshot}")
    print(f"study report         : {paths.reports / 'study_report.html'}")
    print(f"coordinator outboxes : {paths.root / 'outbox'}")
    print(f"Dagster UI           : {ui_hint(paths)} -> http://127.0.0.1:3000 (instance {dagster_home(paths)})")
    steps = next_step_lines(paths)
    if steps:
        print()
        print("coordinators (each center's outbox; every page and workbook in Chinese, then English):")
        print("\n".join(steps))
    return 0 if ok else 1


def cmd_query(args) -> int:
    """Run SQL on the analysts' snapshot (read-only) and print the result."""
    from .store.snapshot import connect_snapshot

    con = connect_snapshot(_paths(args).snapshot)
    try:
        rel = con.sql(args.sql)
        if rel is not None:
            print(rel.df().to_string(index=False, max_rows=args.max_rows))
    finally:
        con.close()
    return 0


# `dagster dev` announces that `dg dev` (dagster-dg-cli, not a dependency) supersedes it
UI_WARNING_FILTER = "ignore:Function `dev_command` is superseded:FutureWarning"


def ui_command(paths, host: str, port: int) -> tuple[list[str], dict]:
    """``dagster dev`` for the data directory and its instance (``$DAGSTER_HOME``, else
    ``<data dir>/dagster_home``, with the project's dagster.yaml): the command and its
    environment."""
    from .runner import ensure_dagster_home

    warn = os.environ.get("PYTHONWARNINGS")
    env = dict(os.environ, IBD_DATA_DIR=str(paths.root), DAGSTER_HOME=str(ensure_dagster_home(paths)),
               PYTHONWARNINGS=f"{warn},{UI_WARNING_FILTER}" if warn else UI_WARNING_FILTER)
    exe = Path(sys.executable).with_name("dagster")
    return [str(exe), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)], env


def cmd_studies(args) -> int:
    """The studies of the project: name, folder, data directory, title, and whether its
    settings are valid (exit status 2 when one is not)."""
    import yaml

    status = 0
    for name in config.study_names():
        folder = config.study_dir(name)
        data = Path(os.environ["IBD_DATA_DIR"]) if name == config.study_name() and os.environ.get("IBD_DATA_DIR") \
            else config.default_data_dir(name)
        from .study_model import StudySettingsError

        try:
            model = config.load_study_model(config.settings_path(name))
            title, state = model.study.title, "settings valid"
        except (OSError, yaml.YAMLError) as exc:
            title, state = "", f"study.yaml unreadable ({type(exc).__name__}: {exc})"
        except StudySettingsError as exc:
            title, state = "", f"study.yaml invalid: {exc}"
        mark = "*" if name == config.study_name() else " "
        rel = folder.relative_to(PROJECT_ROOT) if folder.is_relative_to(PROJECT_ROOT) and folder != PROJECT_ROOT else (
            Path(".") if folder == PROJECT_ROOT else folder)
        print(f"{mark} {name:<20} folder {str(rel) + '/':<28} data {data}\n    {title}\n    {state}")
        status = status if state == "settings valid" else 2
    return status


# seconds Dagster's own shutdown gets after a stop signal before what is left is killed
# (the UI stops within 10 s of a signal: tests/pipeline/test_instance.py)
UI_STOP_GRACE_SECONDS = 7.0


def cmd_ui(args) -> int:
    """``dagster dev`` (webserver, daemon with the sensors, code servers) under
    :func:`ibd_pipeline.supervise.run_supervised`: a stop signal becomes Dagster's own
    Ctrl-C shutdown, and whatever has not stopped ``UI_STOP_GRACE_SECONDS`` later is killed."""
    from .supervise import run_supervised

    cmd, env = ui_command(_paths(args).ensure(), args.host, args.port)
    return run_supervised(cmd, env=env, cwd=str(PROJECT_ROOT), grace_seconds=UI_STOP_GRACE_SECONDS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ibd-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default=None, metavar="NAME",
                   help=f"the study (default $IBD_STUDY, else {config.DEFAULT_STUDY}); `ibd-pipeline studies` lists them")
    p.add_argument("--data-dir", default=None,
                   help="data directory (default $IBD_DATA_DIR, else the study's own: ./data, or ./data/studies/NAME)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="write synthetic deliveries in the three centers' formats")
    s.add_argument("--out", default=None, help="inbox root to write into (default <data-dir>/inbox)")
    s.add_argument("--patients", type=int, default=122, help="screened patients over the three centers (default 122, as published)")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed: the same seed gives the same files (default: the study's, 20250401 for the multicenter study)")
    s.add_argument("--discrepancy-share", default=0.015, help="share of round-B fields differing from round A")
    s.add_argument("--center-share", action="append", metavar="CENTER=SHARE", help="per-center discrepancy share")
    s.add_argument("--date", default=None, help="delivery date in the file names (yyyymmdd; default 20250401, or the study's data cut-off)")
    s.add_argument("--truth-dir", default=None)
    s.set_defaults(fn=cmd_synth)

    s = sub.add_parser("synth-adjudicate", help="fill the outbox worklists as the senior reviewer and drop them in the inboxes")
    s.add_argument("--truth-dir", default=None)
    s.set_defaults(fn=cmd_synth_adjudicate)

    s = sub.add_parser("init-key", help="create the pseudonymization key file if missing")
    s.set_defaults(fn=cmd_init_key)

    s = sub.add_parser("run", help="ingest the inboxes and materialize everything (headless)")
    s.add_argument("--center", action="append", help="only this center (repeatable)")
    s.add_argument("--settle", type=float, default=None, help="seconds a file must be unchanged before it is taken")
    s.add_argument("--force", action="store_true",
                   help="run every job even when nothing changed since the last successful run")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("confirm", help="confirm a held delivery (header-only or far smaller than the current one)")
    s.add_argument("center")
    s.add_argument("file_name")
    s.add_argument("--by", help="who confirms (recorded in archive/<center>/confirmed.jsonl)")
    s.set_defaults(fn=cmd_confirm)

    s = sub.add_parser("rebuild", help="rebuild the warehouse from the archive alone")
    s.set_defaults(fn=cmd_rebuild)

    s = sub.add_parser("verify", help="check the archive and the warehouse against each other")
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("demo", help="synthetic deliveries -> whole study -> report")
    s.add_argument("--patients", type=int, default=122, help="screened patients over the three centers (default 122, as published)")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed: the same seed gives the same files (default: the study's, 20250401 for the multicenter study)")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("query", help="run SQL on the analysts' snapshot (data/analytics.duckdb, read-only)")
    s.add_argument("sql")
    s.add_argument("--max-rows", type=int, default=200)
    s.set_defaults(fn=cmd_query)

    s = sub.add_parser("studies", help="list the studies of the project (folder, data directory, title)")
    s.set_defaults(fn=cmd_studies)

    s = sub.add_parser("ui", help="start the Dagster UI for the data directory")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=3000)
    s.set_defaults(fn=cmd_ui)

    args = p.parse_args(argv)
    from .study_model import StudySettingsError

    try:
        config.study_name(args.study)
    except config.UnknownStudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.study:
        if args.study != (os.environ.get("IBD_STUDY") or config.DEFAULT_STUDY):
            # IBD_DATA_DIR & co. belong to the study of $IBD_STUDY: another study's data
            # directory or settings must not leak into this one
            for var in ("IBD_DATA_DIR", "IBD_STUDY_SETTINGS", "IBD_CENTERS_DIR"):
                os.environ.pop(var, None)
        os.environ["IBD_STUDY"] = args.study

    try:
        return args.fn(args)
    except StudySettingsError as exc:  # one clear error naming the file and each key; no job ran
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
