"""File plumbing shared by the loaders: finding files, opening (.gz), JSON lines, header checks.

Everything that can fail on a whole file raises ``DataError`` naming the file (and column/row) and what to
do; polars' own exceptions never reach the user as the message.
"""

from __future__ import annotations

import ast
import codecs
import csv
import difflib
import glob
import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import polars as pl

from recsys.data.errors import DataError

Format = Literal["csv", "tsv", "jsonl", "parquet"]
_EXT: dict[str, Format] = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                           ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def file_format(path: Path) -> Format:
    """Format from the extension (``.gz`` allowed on text formats)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _EXT.get(suffixes[-1]) if suffixes else None
    if fmt is None or (fmt == "parquet" and path.suffix.lower() == ".gz"):
        excel = " An Excel workbook: save each sheet as CSV (UCI's online_retail_II.xlsx has two, 2009-2010 " \
            "and 2010-2011: put both CSVs in one folder and point data.path at it)." \
            if suffixes and suffixes[-1] in (".xlsx", ".xls", ".xlsm") else ""
        raise DataError(path, f"unsupported file type '{''.join(path.suffixes) or '(none)'}'.",
                        hint=f"Use one of {', '.join(sorted(_EXT))} (text formats may be .gz).{excel}")
    return fmt


def resolve_files(path: str | Path, *, what: str = "data.path") -> list[Path]:
    """A file, a directory (its supported files, sorted, recursively) or a glob pattern -> files."""
    p = Path(path)
    if any(ch in str(path) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(path), recursive=True) if Path(f).is_file())
    elif p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".") and _supported(f))
    elif p.is_file():
        files = [p]
    else:
        raise DataError(path, "file or folder does not exist.", hint=f"Check {what} (relative paths are "
                        f"resolved from {Path.cwd()}).")
    if not files:
        raise DataError(path, "matches no readable log files.", hint=f"Point {what} at .csv/.tsv/.jsonl/.parquet "
                        "files, a folder holding them, or a glob such as 'logs/*.csv'.")
    return files


def _supported(f: Path) -> bool:
    try:
        file_format(f)
        return True
    except DataError:
        return False


def read_bytes(path: Path, *, encoding: str = "utf-8") -> bytes:
    """The file's bytes, gunzipped when it ends in .gz, as UTF-8 (text in another ``encoding`` is transcoded;
    a byte that is not valid in it becomes U+FFFD)."""
    try:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix.lower() == ".gz" else data
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(path, f"cannot be read ({e}).", hint="Check the file is complete and not corrupt.") from e
    if not is_utf8(encoding):
        data = data.decode(check_encoding(encoding), errors="replace").encode("utf-8")
    return data


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(check_encoding(encoding)).name == "utf-8"


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows it, else a DataError naming ``data.encoding``."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError("<config>", f"unknown text encoding '{encoding}'.", column="data.encoding",
                        hint="Use a Python codec name such as utf-8, latin-1, cp1252 or utf-16.") from None
    return encoding


def separator(fmt: Format, delimiter: str | None) -> str:
    """The field separator: ``delimiter`` (``data.delimiter``; "tab" and "\\t" mean a tab) or the extension's."""
    if delimiter is None:
        return "\t" if fmt == "tsv" else ","
    sep = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(delimiter.lower(), delimiter)
    if len(sep) != 1:
        raise DataError("<config>", f"data.delimiter must be one character (got {delimiter!r}).",
                        column="data.delimiter", hint="e.g. data.delimiter=';' or data.delimiter=tab")
    return sep


def delimiter_error(path: Path, present: Sequence[str], sep: str) -> DataError | None:
    """When a delimited file's header parsed as one column that holds another separator: say which one."""
    if len(present) != 1:
        return None
    for other, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'"), (",", "','")):
        if other != sep and other in present[0]:
            opt = "tab" if other == "\t" else other
            return DataError(path, f"the header is a single column {present[0][:80]!r}: the file looks "
                             f"{name}-separated, not {'tab' if sep == chr(9) else repr(sep)}-separated.",
                             hint=f"Set data.delimiter={opt!r} (or re-export it with '{sep}' between fields).")
    return None


def read_ragged(path: Path, *, sep: str, columns: Sequence[str] | None = None,
                encoding: str = "utf-8") -> pl.DataFrame:
    """A delimited file whose rows do not all have the header's field count, read in Python: ``columns``
    (default: all) as String + ``source_row`` + ``_ragged`` (True for a row with more fields than the header;
    the row rules quarantine it). Only used after the fast reader failed on such a row."""
    text = io.TextIOWrapper(io.BytesIO(read_bytes(path, encoding=encoding)), encoding="utf-8", errors="replace",
                            newline="")
    reader = csv.reader(text, delimiter=sep)
    header = [h.lstrip("\ufeff") for h in next(reader, [])]
    columns = list(dict.fromkeys(header)) if columns is None else columns
    idx = [header.index(c) for c in columns]
    cols: dict[str, list[str | None]] = {c: [] for c in columns}
    ragged: list[bool] = []
    try:
        for fields in reader:
            ragged.append(len(fields) > len(header))
            for c, i in zip(columns, idx):
                v = fields[i] if i < len(fields) else None
                cols[c].append(None if v == "" else v)
    except csv.Error as e:
        raise DataError(path, f"cannot be read as delimited text ({e}).", row=len(ragged) + 1,
                        hint="Check the quoting of that row.") from e
    return pl.DataFrame({**cols, "_ragged": ragged}, schema={**{c: pl.String for c in columns}, "_ragged": pl.Boolean}
                        ).with_row_index("source_row", offset=1).with_columns(pl.col("source_row").cast(pl.Int64))


def check_columns(path: Path, present: Sequence[str], required: dict[str, str], *, fixed: bool = False) -> None:
    """``required`` maps the config option (e.g. ``data.columns.user``) to the column it names; with
    ``fixed`` the layout is not configurable and the hint says to rename the column instead."""
    for option, col in required.items():
        if col not in present:
            close = difflib.get_close_matches(col, list(present), n=1, cutoff=0.6)
            fix = f"rename it to '{col}' ({option})" if fixed else f"set {option}='{close[0] if close else '...'}'"
            guess = f" Did you mean '{close[0]}'? If so, {fix}." if close else \
                (f" The file must have it ({option})." if fixed else f" Set {option} to the right column name.")
            raise DataError(path, f"required column is missing (the file has: {', '.join(map(str, present[:20]))}).",
                            column=col, hint=guess.strip())


def empty_error(path: Path) -> DataError:
    return DataError(path, "the file is empty (no header, no rows).", hint="Remove it or re-export the log.")


def ragged_error(path: Path, sep: str, exc: Exception) -> DataError:
    """Find the first row whose field count differs from the header's (only on the failure path)."""
    row = None
    with _text_reader(path) as f:
        reader = csv.reader(f, delimiter=sep)
        width = len(next(reader, []))
        for i, fields in enumerate(reader, start=1):
            if len(fields) > width:
                row = i
                break
    return DataError(path, f"a row has more fields than the header ({_short(exc)}).", row=row,
                     hint="Usually an unquoted separator inside a text field: quote the field or export as "
                          "TSV/Parquet.")


def _text_reader(path: Path) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(read_bytes(path)), encoding="utf-8", errors="replace", newline="")


def polars_error(path: Path, fmt: str, exc: Exception) -> DataError:
    """Wrap a polars/pyarrow read failure in a DataError (the raw message is kept short, after the cause)."""
    if isinstance(exc, pl.exceptions.NoDataError):
        return empty_error(path)
    if "more fields than defined" in str(exc):
        return ragged_error(path, "\t" if fmt == "tsv" else ",", exc)
    return DataError(path, f"cannot be read as {fmt.upper()} ({_short(exc)}).",
                     hint="Check that the extension matches the content and the file is not truncated.")


def _short(exc: Exception) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()[:200]


# --------------------------------------------------------------------------- JSON lines
def iter_json_lines(path: Path, data: bytes, *, loose: bool = False) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield ``(line_no, record, error)`` for every non-blank line (1-based line numbers).

    ``loose`` also accepts Python-literal lines (the 2014 Amazon metadata is written with ``repr``).
    Bad bytes are replaced by U+FFFD (the row rules then quarantine ids that contain it).
    """
    if not data.strip():
        raise empty_error(path)
    records = json_array(path, data)
    if records is not None:
        for no, rec in enumerate(records, start=1):
            yield no, (rec if isinstance(rec, dict) else None), (None if isinstance(rec, dict) else "not a JSON object")
        return
    for no, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        text = line.decode("utf-8", errors="replace").lstrip("\ufeff")
        rec, err = None, None
        try:
            rec = json.loads(text)
        except ValueError:
            if loose and text.lstrip().startswith("{"):
                try:
                    rec = ast.literal_eval(text)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    pass
        if not isinstance(rec, dict):
            rec, err = None, "not a JSON object (garbage line)"
        yield no, rec, err


def json_array(path: Path, data: bytes) -> list[Any] | None:
    """The records of a file holding one JSON array (``[{...}, {...}]``, pretty-printed or not), or None for
    JSON lines. Element ``i`` (1-based) is the record's row number. A file that opens with ``[`` but is not
    one array (and whose first line is not a JSON value of its own) is a DataError naming the position."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if body.lstrip()[:1] != b"[":
        return None
    text = body.decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except ValueError as e:
        first = text.lstrip().split("\n", 1)[0]
        try:
            json.loads(first)
            return None  # JSON lines whose first line is a list: the row rules quarantine that line
        except ValueError:
            pass
        where = f" at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise DataError(path, f"starts with '[' but is not a complete JSON array ({getattr(e, 'msg', e)}{where}).",
                        hint="Fix or re-export the file, or write one JSON object per line (JSON lines).") from None
    return value if isinstance(value, list) else None


def read_jsonl(path: Path, *, fields: Sequence[str], encoding: str = "utf-8") -> tuple[pl.DataFrame, list[str]]:
    """Read ``fields`` (as String; nested values as JSON text) plus ``source_row`` and ``_json_error``.

    Fast path: polars' reader, when the file has no blank lines and parses whole. Otherwise line by line in
    Python, so one garbage line is quarantined instead of failing the file. A file holding one JSON array is
    read as its records (row = element number). Returns (frame, the fields that occur as a key somewhere in
    the file — a field that is null everywhere is still "present").
    """
    data = read_bytes(path, encoding=encoding)
    if not data.strip():
        raise empty_error(path)
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    present = [f for f in fields if json.dumps(f).encode() in body or repr(f).encode() in body]
    records = json_array(path, body)
    if records is None and b"\n\n" not in body and b"\n\r\n" not in body and not body[:1].isspace():
        try:
            df = pl.read_ndjson(io.BytesIO(body), schema={f: pl.String for f in fields})
            df = df.with_row_index("source_row", offset=1).with_columns(
                pl.col("source_row").cast(pl.Int64), pl.lit(None, dtype=pl.String).alias("_json_error"))
            return df, present
        except Exception:  # noqa: BLE001 - any failure: fall back to the tolerant reader below
            pass
    cols: dict[str, list[Any]] = {f: [] for f in fields}
    rows: list[int] = []
    errors: list[str | None] = []
    lines = iter_json_lines(path, body) if records is None else (
        (no, rec if isinstance(rec, dict) else None, None if isinstance(rec, dict) else "not a JSON object")
        for no, rec in enumerate(records, start=1))
    for no, rec, err in lines:
        rows.append(no)
        errors.append(err)
        for f in fields:
            cols[f].append(as_text(rec.get(f)) if rec is not None else None)
    df = pl.DataFrame({**cols, "source_row": rows, "_json_error": errors},
                      schema={**{f: pl.String for f in fields}, "source_row": pl.Int64, "_json_error": pl.String})
    return df, present


# --------------------------------------------------------------------------- value coercion (Python side)
def as_text(v: Any) -> str | None:
    """Scalar -> str; list/dict -> JSON text; None -> None."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def as_price(v: Any) -> float | None:
    """12.99, "12.99", "$12.99", "$1,299.00" -> float; ranges ("$5 - $9") and junk -> None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    m = re.fullmatch(r"\s*[$£€]?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*", str(v))
    return float(m.group(1).replace(",", "")) if m else None


def price_expr(expr: pl.Expr) -> pl.Expr:
    """Polars twin of :func:`as_price` for string or numeric columns."""
    txt = expr.cast(pl.String).str.strip_chars().str.replace(r"^[$£€]\s*", "").str.replace_all(",", "")
    return txt.cast(pl.Float64, strict=False)
