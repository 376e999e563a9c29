"""Downloads: CSV that spreadsheets cannot execute, and JSON.

A cell that starts with = + - @ (or a tab or carriage return) is read as a formula by Excel,
LibreOffice and Google Sheets; such cells get a leading apostrophe, which shows as plain text.
"""

import csv
import io
import json

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or (list(rows[0]) if rows else [])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(c) for c in columns])
    for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def json_text(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
