"""The report's figures: each section registers a figure job (a pure plotting function and
its arguments) on the context; after every section is built they are drawn, in forked
worker processes where possible, and the placeholders become <figure> blocks or a
"not available" note."""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .fmt import esc, not_available

log = logging.getLogger(__name__)

DPI = 110


@dataclass
class Job:
    name: str
    func: object
    args: tuple
    kwargs: dict
    tight: bool
    raw: bool
    section: str
    alt: str
    caption: str


def render(func, args, kwargs, tight: bool, raw: bool) -> bytes:
    """One figure as PNG bytes (runs in a worker process or in-process)."""
    out = func(*args, **kwargs)
    if raw:
        return out[0] if isinstance(out, tuple) else out
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        out.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None,
                    metadata={"Software": None})
    finally:
        plt.close(out)
    return buf.getvalue()


class FigureCache:
    """Figures drawn before, by what they were drawn from (issue 14: what did not change is
    not recomputed): a figure's key is the SHA-256 of ``version`` (the code, configuration
    and library versions), its plotting function and its pickled arguments, so the same
    key can only mean the same inputs and the same drawing code. ``folder`` holds one
    ``<key>.png`` per figure of the last report; the others are removed after each build."""

    def __init__(self, folder: str | Path, version: str):
        self.folder, self.version = Path(folder), version

    def key(self, job: Job) -> str | None:
        try:
            payload = pickle.dumps((job.func.__module__, job.func.__qualname__, job.args, job.kwargs, job.tight,
                                    job.raw, DPI), protocol=5)
        except Exception:  # noqa: BLE001 - an argument that does not pickle: drawn every time
            return None
        return hashlib.sha256(self.version.encode() + b"\0" + payload).hexdigest()

    def get(self, key: str | None) -> bytes | None:
        if key is None:
            return None
        try:
            png = (self.folder / f"{key}.png").read_bytes()
        except OSError:
            return None
        return png if png[:8] == b"\x89PNG\r\n\x1a\n" else None

    def put(self, key: str | None, png: bytes) -> None:
        if key is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(png)
        os.replace(tmp, self.folder / f"{key}.png")

    def keep_only(self, keys) -> None:
        wanted = {f"{k}.png" for k in keys if k}
        if self.folder.is_dir():
            for p in self.folder.iterdir():
                if p.name not in wanted:
                    p.unlink(missing_ok=True)


def workers_for(requested: int | None) -> int:
    if requested is None:
        env = os.environ.get("IBD_REPORT_WORKERS", "").strip()
        requested = int(env) if env.isdigit() else min(4, os.cpu_count() or 1)
    return max(1, int(requested))


def render_all(jobs: list[Job], workers: int, cache: FigureCache | None = None) -> dict[str, bytes | Exception]:
    """Render every figure; with ``workers`` > 1 in forked worker processes (the
    figure functions are pure), falling back to in-process rendering for anything the
    pool could not do. With a ``cache``, a figure drawn before from the same inputs is
    taken from it, and what is drawn is added to it."""
    if cache is not None:
        keys = {j.name: cache.key(j) for j in jobs}
        cached = {j.name: png for j in jobs if (png := cache.get(keys[j.name])) is not None}
        drawn = render_all([j for j in jobs if j.name not in cached], workers)
        for name, res in drawn.items():
            if isinstance(res, (bytes, bytearray)) and res[:8] == b"\x89PNG\r\n\x1a\n":
                cache.put(keys[name], bytes(res))
        cache.keep_only(keys.values())
        return {j.name: cached[j.name] if j.name in cached else drawn[j.name] for j in jobs}
    results: dict[str, bytes | Exception] = {}
    # fork (Linux only: macOS system frameworks are not fork-safe) keeps the imported
    # matplotlib / lifelines, so workers start in milliseconds
    if workers > 1 and len(jobs) > 2 and sys.platform.startswith("linux"):
        try:
            from concurrent.futures import ProcessPoolExecutor

            from ibd_pipeline.forking import release_free_memory

            release_free_memory()  # the workers share fewer pages with the parent

            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                     mp_context=multiprocessing.get_context("fork")) as ex:
                futs = [(j, ex.submit(render, j.func, j.args, j.kwargs, j.tight, j.raw)) for j in jobs]
                for j, f in futs:
                    try:
                        results[j.name] = f.result()
                    except Exception:  # noqa: BLE001 - retried in-process below
                        pass
        except Exception as e:  # noqa: BLE001 - no pool: render in-process
            log.warning("report figures: process pool unavailable (%s: %s); rendering in-process", type(e).__name__, e)
    for j in jobs:
        if j.name in results:
            continue
        try:
            results[j.name] = render(j.func, j.args, j.kwargs, j.tight, j.raw)
        except Exception as e:  # noqa: BLE001 - the figure becomes a "not available" note
            log.exception("report figure %s failed", j.name)
            results[j.name] = e
    return results


def place_figures(text: str, jobs: list[Job], rendered: dict[str, bytes | Exception], figures: dict[str, bytes],
                  unavailable: dict[str, list[str]]) -> str:
    """Replace each figure placeholder of ``text`` by its <figure> (the image itself stays
    a placeholder until the privacy guard has run) or a "not available" note; drawn PNGs
    go to ``figures``, failures to ``unavailable`` under the job's section."""
    blocks = {}
    for j in jobs:
        res = rendered.get(j.name)
        if isinstance(res, (bytes, bytearray)) and res[:8] == b"\x89PNG\r\n\x1a\n":
            figures[j.name] = bytes(res)
            cap = f"<figcaption>{esc(j.caption)}</figcaption>" if j.caption else ""
            blocks[j.name] = f'<figure><img src="@@IMG:{j.name}@@" alt="{esc(j.alt)}">{cap}</figure>'
        else:
            reason = f"{type(res).__name__}: {res}" if isinstance(res, Exception) else "no PNG produced"
            unavailable.setdefault(j.section, []).append(f"figure {j.name}: {reason}")
            blocks[j.name] = not_available(f"figure '{j.alt}' could not be drawn ({reason})")
    return re.sub(r"@@FIGURE:([A-Za-z0-9_.-]+)@@", lambda m: blocks.get(m.group(1), ""), text)
