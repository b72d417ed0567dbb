"""Uploaded CSV files for the boosting topic: read safely with pandas (the delimiter sniffed by `csv.Sniffer`
from the header line), then cleaned like the built-in tables by `data.table_from_dataframe`. A bad file never
crashes: every problem (missing, empty, too large, binary, unparsable, one column, no rows) is a `ValueError`
saying what was wrong and what to do."""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from apps.boosting.data import MIN_ROWS, Table, table_from_dataframe

MAX_CSV_BYTES = 50 * 1024 * 1024  # uploads larger than this are refused before reading


def _read_csv(path: str | os.PathLike | None) -> tuple[pd.DataFrame, list[str]]:
    """(frame, notes) of an uploaded CSV, or a ValueError saying why it cannot be read."""
    if path is None or not Path(path).is_file():
        raise ValueError(
            "No file was uploaded; upload a CSV file with a header row."
            if path is None or str(path).strip() == ""
            else f"File {Path(path).name!r} was not found; upload it again."
        )
    path, size = Path(path), Path(path).stat().st_size
    if size > MAX_CSV_BYTES or size == 0:
        raise ValueError(
            f"File {path.name!r} is empty; upload a CSV with a header row and data rows."
            if size == 0
            else f"File {path.name!r} is {size / 1024**2:.1f} MB; the limit is {MAX_CSV_BYTES // 1024**2} MB. "
            "Upload a sample of its rows or fewer columns."
        )
    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    if b"\x00" in head or sum(byte < 32 and byte not in (9, 10, 13) for byte in head) > len(head) * 0.01:
        raise ValueError(
            f"File {path.name!r} is not a text CSV (it holds binary data; is it a spreadsheet, archive or image?). "
            "Export the table as CSV (comma-separated text) and upload that."
        )
    header = next((line for line in head.decode("latin-1").splitlines() if line.strip()), "")
    try:  # the header line decides; without a delimiter there (one column), the checks below say so
        delimiter = csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    notes = [f"Columns are separated by {'tab' if delimiter == chr(9) else repr(delimiter)}."] * (delimiter != ",")
    read = dict(sep=delimiter, skipinitialspace=True, na_values=["?"], low_memory=False)  # "?" is missing too
    try:
        try:
            frame = pd.read_csv(path, encoding="utf-8-sig", **read)
        except UnicodeDecodeError:
            frame = pd.read_csv(path, encoding="latin-1", **read)
            notes.append("The file is not UTF-8; it was read as Latin-1.")
    except (pd.errors.ParserError, ValueError, OverflowError, MemoryError) as error:  # EmptyDataError too
        message = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise ValueError(
            f"File {path.name!r} could not be parsed as CSV ({message}). Check that it is comma-separated text with a "
            "header row and that every row has as many fields as the header."
        ) from error
    if frame.shape[1] < 2:
        raise ValueError(
            f"File {path.name!r} has {frame.shape[1]} column(s); a table needs a target column and at least one feature "
            "column. Check that the values are separated by commas (or semicolons, tabs or |)."
        )
    if len(frame) == 0:
        raise ValueError(f"File {path.name!r} has a header but no data rows; at least {MIN_ROWS} rows are needed.")
    return frame.rename(columns=lambda c: str(c).strip()), notes


def csv_columns(path: str | os.PathLike | None) -> list[str]:
    """The column names of an uploaded CSV (for the target dropdown); ValueError when it cannot be read."""
    return list(_read_csv(path)[0].columns)


def table_from_csv(path: str | os.PathLike | None, target: str | None) -> Table:
    """An uploaded CSV as a cleaned `Table` (see `table_from_dataframe`); every problem is a ValueError."""
    frame, notes = _read_csv(path)
    table = table_from_dataframe(frame, target, name=Path(path).stem or "upload")
    return replace(table, notes=notes + table.notes)
