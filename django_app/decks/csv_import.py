"""Reading a CSV of notes (front, back, tags): good rows and a report of the bad ones.

Pure: bytes in, rows and errors out. The service decides what to do with them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from decks.content import content_errors, normalize_tags

MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_CSV_ROWS = 5000
HEADERS = (["front", "back"], ["front", "back", "tags"])


@dataclass(frozen=True)
class CsvRow:
    line: int
    front: str
    back: str
    tags: str


@dataclass(frozen=True)
class RowError:
    line: int
    message: str
    # The row as it was read, shortened, so the user can find it.
    excerpt: str = ""


@dataclass
class ParsedCsv:
    rows: list[CsvRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # A problem with the whole file (encoding, size): then nothing is imported.
    file_error: str = ""


def _excerpt(cells: list[str]) -> str:
    text = ", ".join(cells)
    return text if len(text) <= 80 else text[:77] + "..."


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def parse_csv(data: bytes, note_type: str) -> ParsedCsv:
    result = ParsedCsv()
    if len(data) > MAX_CSV_BYTES:
        result.file_error = f"The file is larger than {MAX_CSV_BYTES // 1024 // 1024} MB."
        return result
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        result.file_error = (
            f"The file is not UTF-8 text (byte {error.start}). Save it as CSV UTF-8 and retry."
        )
        return result
    if "\x00" in text:
        result.file_error = "The file contains NUL bytes: it is not a CSV text file."
        return result
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text[:4096]))
    first = True
    try:
        for cells in reader:
            line = reader.line_num
            if first:
                first = False
                if [cell.strip().lower() for cell in cells] in HEADERS:
                    continue
            if not any(cell.strip() for cell in cells):
                continue
            if len(result.rows) + len(result.errors) >= MAX_CSV_ROWS:
                result.errors.append(
                    RowError(
                        line,
                        f"Only the first {MAX_CSV_ROWS} rows are read; this and "
                        "later rows were left out.",
                    )
                )
                break
            if len(cells) not in (2, 3):
                result.errors.append(
                    RowError(
                        line,
                        f"Expected 2 or 3 columns (front, back, tags), found {len(cells)}.",
                        _excerpt(cells),
                    )
                )
                continue
            front, back = cells[0].strip(), cells[1].strip()
            tags = cells[2] if len(cells) == 3 else ""
            problems = content_errors(note_type, front, back, tags)
            if problems:
                result.errors.append(RowError(line, " ".join(problems.values()), _excerpt(cells)))
                continue
            result.rows.append(CsvRow(line, front, back, normalize_tags(tags)))
    except csv.Error as error:
        result.errors.append(
            RowError(reader.line_num, f"The CSV cannot be read from here on: {error}.")
        )
    return result
