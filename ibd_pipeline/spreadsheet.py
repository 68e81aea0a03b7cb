"""Text a coordinator opens in Excel (worklists, reviewer lists, rejected-row lists) is
neutralised against formula injection: a cell that starts with = + - @ tab or CR gets a
leading single quote, unless it is a plain number (``-1.5``)."""

from __future__ import annotations

import re

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(text: str) -> str:
    """One cell's text, safe to open in a spreadsheet."""
    if text and text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every text cell of a frame neutralised (numbers and missing values untouched)."""
    return df.map(lambda v: neutralise(v) if isinstance(v, str) else v)
