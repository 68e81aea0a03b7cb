"""The report's privacy guard (STUDY.md "Privacy"): no pseudonymous patient id may reach
the published page; any that did is removed before the file is written."""

from __future__ import annotations

import re

# the pseudonym shape the pipeline makes (ibd_pipeline.pseudonym), removed wherever it stands
_ID_PATTERN = re.compile(r"\bP[0-9a-f]{20}\b")
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")


def privacy_guard(html_text: str, ids: set[str]) -> tuple[str, int]:
    """Remove any pseudonymous id that reached the text (belt and braces: no section
    lists patients). An id counts where it stands between non-alphanumeric characters.
    Alphanumeric ids (all the pipeline makes) are looked up per alphanumeric run of the
    text, so the cost does not grow with the number of patients; any other id shape goes
    through one alternation pattern."""
    count = 0
    long_ids = {i for i in ids if len(i) >= 6}
    plain = {i for i in long_ids if i.isascii() and i.isalnum()}
    other = sorted(long_ids - plain, key=len, reverse=True)
    if plain:
        hits = 0

        def sub(m: re.Match) -> str:
            nonlocal hits
            if m.group() in plain:
                hits += 1
                return "[id removed]"
            return m.group()

        html_text = _ALNUM_RUN.sub(sub, html_text)
        count += hits
    if other:
        pat = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, other)) + r")(?![A-Za-z0-9])")
        html_text, n1 = pat.subn("[id removed]", html_text)
        count += n1
    html_text, n2 = _ID_PATTERN.subn("[id removed]", html_text)
    return html_text, count + n2
