"""Uploaded CSV files: reading, delimiters, encodings, and a clear error for every file that cannot be read."""

import pandas as pd
import pytest

from apps.boosting.csv_upload import csv_columns, table_from_csv
from tests.boosting.test_data import base_frame, write_csv


def test_header_only_file_is_an_error(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,c\n")
    with pytest.raises(ValueError, match="no data rows"):
        csv_columns(str(path))


def test_a_file_over_50_mb_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    with open(path, "wb") as handle:  # sparse: 51 MB on paper, nothing written but the header
        handle.write(b"a,b,label\n")
        handle.truncate(51 * 1024 * 1024)

    def no_parsing(*_args, **_kwargs):
        raise AssertionError("a file over the limit must not be parsed")

    monkeypatch.setattr(pd, "read_csv", no_parsing)
    for read in (lambda: csv_columns(str(path)), lambda: table_from_csv(str(path), "label")):
        with pytest.raises(ValueError, match=r"51\.0 MB; the limit is 50 MB"):
            read()


def test_a_binary_file_is_refused(tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    for read in (lambda: csv_columns(str(path)), lambda: table_from_csv(str(path), "label")):
        with pytest.raises(ValueError, match="not a text CSV"):
            read()


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        csv_columns(str(path))


def test_ragged_rows_are_a_parse_error(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(ValueError, match="could not be parsed as CSV"):
        csv_columns(str(path))


def test_a_missing_upload_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="No file"):
        csv_columns(None)
    with pytest.raises(ValueError, match="not found"):
        table_from_csv(str(tmp_path / "gone.csv"), "x")


def test_csv_columns_reads_the_header_and_other_delimiters(tmp_path):
    frame = base_frame(20)
    assert csv_columns(write_csv(tmp_path, frame)) == ["height", "weight", "label"]
    path = write_csv(tmp_path, frame, name="semi.csv", sep=";")
    assert csv_columns(path) == ["height", "weight", "label"]
    table = table_from_csv(path, "label")
    assert table.name == "semi" and table.X.shape == (20, 2)
    assert any("';'" in note for note in table.notes)


def test_a_latin1_file_is_read_with_a_note(tmp_path):
    frame = base_frame(20)
    frame["city"] = ["Zürich", "Genève"] * 10
    path = write_csv(tmp_path, frame, encoding="latin-1")
    table = table_from_csv(path, "label")
    assert table.categories["city"] == ["Genève", "Zürich"]
    assert any("Latin-1" in note for note in table.notes)
