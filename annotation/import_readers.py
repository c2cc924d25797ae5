"""Streaming readers that turn an uploaded import file into raw rows.

Clients upload files of up to millions of rows to create annotation items. This
module only turns bytes into plain ``dict`` rows; checking a row's content
against the project's task type happens elsewhere. It has no Django imports.

Everything streams: the file is read in chunks of ``CHUNK_SIZE`` bytes, decoded
incrementally and parsed row by row, so memory stays constant however long the
file is (a single row is bounded by ``MAX_ROW_CHARS``). The stream need not be
seekable: the first ``HEAD_SIZE`` bytes are read once, used to detect the
encoding, and then fed back in front of the rest.

``iter_rows`` yields a ``RawRow`` for every good row and a ``RowProblem`` for a
bad row that does not spoil the rest of the file. A problem with the file as a
whole raises ``ImportFileError``, naming the row when it is known.

Row numbers are 1-based:

* ``jsonl``: the physical line number. Blank lines yield nothing but are counted.
* ``json`` and ``label_studio``: the index of the element in the top-level array.
* ``csv``: the record number, the header being record 1 (so the first data
  record is row 2). A quoted field with embedded newlines belongs to one record,
  so after such a record the row number is smaller than the line number. Blank
  records yield nothing but are counted.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import ijson

__all__ = [
    "BINARY_FORMATS",
    "CHUNK_SIZE",
    "FORMATS",
    "HEAD_SIZE",
    "MAX_ROW_CHARS",
    "ImportFileError",
    "RawRow",
    "RowProblem",
    "detect_encoding",
    "detect_encoding_for",
    "detect_format",
    "iter_rows",
    "label_studio_result_to_answer",
    "read_head",
]

FORMATS = ("jsonl", "json", "csv", "label_studio", "conll", "parquet", "hf_dataset")
BINARY_FORMATS = frozenset({"parquet", "hf_dataset"})
"""Read as bytes (annotation.dataset_readers): they have no text encoding."""

HEAD_SIZE = 64 * 1024
"""How many leading bytes are used to detect the encoding and the format."""

CHUNK_SIZE = 64 * 1024
"""How many bytes are read from the stream at a time."""

MAX_ROW_CHARS = 16 * 1024 * 1024
"""The longest JSONL line or CSV line accepted, and the CSV field size limit."""

CSV_DELIMITERS = (",", "\t", ";")
CSV_JSON_COLUMNS = frozenset({"gold", "metadata", "data"})

_ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "utf-32": "UTF-32",
    "utf-32-le": "UTF-32",
    "utf-32-be": "UTF-32",
    "gb18030": "GB18030",
    "gbk": "GBK",
    "gb2312": "GB2312",
}

# Byte order marks, longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class ImportFileError(ValueError):
    """A problem with the file as a whole; ``row`` is the 1-based row, if known."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row

    def __str__(self) -> str:
        if self.row is None:
            return self.message
        return f"row {self.row}: {self.message}"

    def __reduce__(self):
        # Keep ``row`` when the error crosses a process boundary (Celery results).
        return (type(self), (self.message, self.row))


@dataclass(frozen=True, slots=True)
class RawRow:
    """A row as read from the file: ``data`` is not validated yet."""

    row: int
    data: dict


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A bad row that does not spoil the rest of the file."""

    row: int
    field: str | None
    message: str


class _DecodeFailure(Exception):
    """Raised by ``_iter_text`` once all text before the bad bytes has been yielded."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _RowTooLong(Exception):
    pass


# --------------------------------------------------------------------------- #
# Encoding and format detection


def detect_encoding(head: bytes) -> str:
    """Name the encoding of a file from its first bytes.

    A byte order mark wins ("utf-8-sig", "utf-16", "utf-32"). Otherwise the head
    must decode as UTF-8 ("utf-8", which includes plain ASCII) or else as GB18030
    ("gb18030", a superset of GBK and GB2312). A multibyte sequence cut off at the
    very end of ``head`` is tolerated, since ``head`` is usually a prefix.
    """
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    for name in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(name)("strict").decode(head, False)
        except UnicodeDecodeError:
            continue
        return name
    raise ImportFileError("the file is neither UTF-8 nor GB18030/GBK; re-save it as UTF-8")


def detect_encoding_for(fmt: str, head: bytes) -> str:
    """``detect_encoding`` for text formats; "" for the binary ones."""
    return "" if fmt in BINARY_FORMATS else detect_encoding(head)


_ARCHIVE_EXTENSIONS = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2")


def _binary_format(name: str, head: bytes) -> str | None:
    if name.endswith(".parquet") or head.startswith(b"PAR1"):
        return "parquet"
    if (
        name.endswith(_ARCHIVE_EXTENSIONS)
        or head.startswith((b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))
        or head[257:262] == b"ustar"
    ):
        return "hf_dataset"
    return None


def detect_format(filename: str | None, head: bytes) -> str:
    """Guess one of ``FORMATS`` from the file name and the first bytes.

    Parquet (.parquet or the PAR1 magic) and archives (.zip, .tar[.gz|.xz|.bz2]
    or their magic bytes: a Hugging Face dataset folder) come first. Then the
    extension decides when it is known (.conll/.bio/.iob, .jsonl/.ndjson, .json,
    .csv/.tsv).
    Otherwise the first non-whitespace character after any byte order mark does:
    ``[`` means a JSON array, ``{`` JSON Lines, anything else CSV. A JSON array
    whose first element is an object with a ``"data"`` object is a Label Studio
    task list. ``head`` is the first up to ``HEAD_SIZE`` bytes of the file.
    """
    binary = _binary_format((filename or "").lower(), head)
    if binary:
        return binary
    ext = os.path.splitext(filename or "")[1].lower()
    if ext in (".conll", ".bio", ".iob", ".iob2"):
        return "conll"
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    if ext in (".csv", ".tsv"):
        return "csv"
    text = _head_text(head)
    first = text.lstrip()[:1]
    if ext == ".json" or first == "[":
        return "label_studio" if _looks_like_label_studio(text) else "json"
    if first == "{":
        return "jsonl"
    return "csv"


def _head_text(head: bytes) -> str:
    try:
        encoding = detect_encoding(head)
    except ImportFileError:
        encoding = "utf-8"
    text = codecs.getincrementaldecoder(encoding)("replace").decode(head, False)
    return text[1:] if text[:1] == "\ufeff" else text


def _looks_like_label_studio(text: str) -> bool:
    """Whether the first element of the JSON array in ``text`` has a "data" object.

    ``text`` may stop anywhere: if it ends before the answer is known, an element
    with Label Studio's other task keys at its top level counts as a task.
    """
    hinted = False
    after_data_key = False
    events = ijson.parse(io.BytesIO(text.encode("utf-8", "replace")))
    try:
        for position, (prefix, event, value) in enumerate(events):
            if position == 0:
                if event != "start_array":
                    return False
                continue
            if position == 1:
                if event != "start_map":
                    return False
                continue
            if after_data_key:
                return event == "start_map"
            if prefix == "item":
                if event == "end_map":
                    return False
                if event == "map_key":
                    after_data_key = value == "data"
                    hinted = hinted or value in ("annotations", "predictions")
    except ijson.JSONError:
        return hinted
    return False


# --------------------------------------------------------------------------- #
# Reading and decoding


def read_head(stream: BinaryIO, size: int = HEAD_SIZE) -> tuple[bytes, BinaryIO]:
    """Read up to ``size`` bytes and return them with a stream that replays them.

    For callers that need the head for ``detect_format`` and then pass the
    returned stream to ``iter_rows``; works on streams that cannot seek.
    """
    head, _ = _read_head(stream, size)
    return head, _Replay(head, stream)  # type: ignore[return-value]


class _Replay:
    """A read-only binary stream: ``head`` then whatever ``stream`` still holds."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size is None or size < 0:
            data = self._head + self._stream.read()
            self._head = b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data


def _read_head(stream: BinaryIO, size: int = HEAD_SIZE) -> tuple[bytes, bool]:
    """Read up to ``size`` bytes, however short each read is; say whether EOF came."""
    pieces = []
    have = 0
    while have < size:
        data = stream.read(size - have)
        if isinstance(data, str):
            raise TypeError("the import stream must be opened in binary mode")
        if not data:
            return b"".join(pieces), True
        pieces.append(data)
        have += len(data)
    return b"".join(pieces), False


def _encoding_label(encoding: str) -> str:
    return _ENCODING_LABELS.get(encoding, encoding.upper())


def _iter_text(head: bytes, stream: BinaryIO, encoding: str) -> Iterator[str]:
    """Decode ``head`` and then the rest of ``stream`` chunk by chunk.

    A leading byte order mark is dropped. On undecodable bytes every character
    before them is yielded first, then ``_DecodeFailure`` is raised, so that the
    consumer's row count at that moment names the row holding the bad bytes; the
    message names the encoding and the byte offset.
    """
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    decode = decoder.decode
    read = stream.read
    label = _encoding_label(encoding)
    at_start = True
    fed = 0  # bytes given to the decoder before this chunk
    chunk = head
    while chunk:
        state = decoder.getstate()
        try:
            text = decode(chunk)
        except UnicodeError as exc:  # UnicodeDecodeError, or a codec's own complaint
            decoder.setstate(state)
            text = _decode_prefix(decoder, chunk)
            if at_start and text[:1] == "\ufeff":
                text = text[1:]
            if text:
                yield text
            # The decoder's input was its pending bytes followed by this chunk.
            start = getattr(exc, "start", 0)
            offset = fed - len(state[0]) + start
            reason = getattr(exc, "reason", str(exc))
            raise _DecodeFailure(
                f"invalid {label} byte sequence at byte {offset} ({reason}); "
                "re-save the file as UTF-8"
            ) from None
        fed += len(chunk)
        if text:
            if at_start:
                at_start = False
                if text[0] == "\ufeff":
                    text = text[1:]
            if text:
                yield text
        chunk = read(CHUNK_SIZE)
    pending = len(decoder.getstate()[0])
    try:
        text = decode(b"", True)
    except UnicodeError:
        raise _DecodeFailure(
            f"the file ends in the middle of a {label} character (at byte {fed - pending})"
        ) from None
    if text:
        yield text


def _decode_prefix(decoder: codecs.IncrementalDecoder, chunk: bytes) -> str:
    """Decode ``chunk`` byte by byte up to its first bad byte (the error path only)."""
    pieces = []
    for offset in range(len(chunk)):
        try:
            pieces.append(decoder.decode(chunk[offset : offset + 1]))
        except UnicodeError:
            break
    return "".join(pieces)


def _open_text(stream: BinaryIO, encoding: str | None) -> Iterator[str]:
    head, eof = _read_head(stream)
    if encoding is None:
        encoding = detect_encoding(head)
    if encoding == "utf-8":
        encoding = "utf-8-sig"  # drops a byte order mark, if any
    elif encoding in _BYTE_ORDERS:
        encoding = _byte_order(head, encoding)
    if eof and _is_blank(head, encoding):
        raise ImportFileError("the file is empty")
    return _iter_text(head, stream, encoding)


# UTF-16 and UTF-32 without an order name the byte order in their first bytes; the
# codecs refuse a stream without that mark ("does not start with BOM").
_BYTE_ORDERS = {
    "utf-16": (2, (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-16-le", "utf-16-be"),
    "utf-32": (4, (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "utf-32-le", "utf-32-be"),
}


def _byte_order(head: bytes, encoding: str) -> str:
    """``encoding`` when ``head`` starts with its byte order mark, else the order its
    zero bytes show, or ``ImportFileError`` when they show none.

    Latin letters, digits and punctuation (JSON keys, CSV headers) have zero high
    bytes, which come last in a little-endian code unit and first in a big-endian
    one. Without such zeros (all-Chinese text, or a file that is not UTF-16 at
    all) the order cannot be told, and guessing would import garbage.
    """
    width, boms, little, big = _BYTE_ORDERS[encoding]
    if head.startswith(boms):
        return encoding
    units = len(head) // width
    # Zeros in each code unit's first and last byte: little-endian ASCII has them
    # last, big-endian first. A quarter of the units must agree, and the other
    # side (characters such as U+4E00) must have few.
    first = head[0::width].count(0)
    last = head[width - 1 :: width].count(0)
    if last and last * 4 >= units and first * 4 <= last:
        return little
    if first and first * 4 >= units and last * 4 <= first:
        return big
    label = _encoding_label(encoding)
    hint = ""
    try:
        if b"\x00" not in head and detect_encoding(head) in ("utf-8", "utf-8-sig"):
            hint = " It reads as UTF-8: upload it with encoding utf-8, or leave the encoding out."
    except ImportFileError:
        pass
    raise ImportFileError(
        f"the file was declared {label} but has no {label} byte order mark at byte 0, and "
        f"its byte order cannot be told from its content; give the encoding as "
        f"{little} or {big}, or re-save the file as UTF-8.{hint}"
    )


def _is_blank(data: bytes, encoding: str) -> bool:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return not text.strip().lstrip("\ufeff").strip()


def _normalize_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ImportFileError(f"unknown text encoding {encoding!r}") from None


# --------------------------------------------------------------------------- #
# The public entry point


def iter_rows(
    stream: BinaryIO,
    *,
    fmt: str,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Iterator[RawRow | RowProblem]:
    """Yield the rows of an import file, streaming.

    ``stream`` is a binary file object; only ``read(size)`` is used, so it may be
    an upload that cannot seek. ``fmt`` is one of ``FORMATS``; ``encoding`` is
    detected from the first ``HEAD_SIZE`` bytes when None (see
    ``detect_encoding``). ``delimiter`` is for CSV only: None sniffs ``,``, tab
    or ``;`` from the header line (pass ``"\\t"`` for a .tsv file).

    ``fmt``, ``encoding`` and ``delimiter`` are checked at once; the stream is
    read only as the rows are consumed, and ``ImportFileError`` may be raised
    from any step of the iteration.
    """
    if fmt not in FORMATS:
        raise ImportFileError(f"unknown import format {fmt!r}; known formats: {', '.join(FORMATS)}")
    # "" (a binary format's) is no encoding, as None is.
    encoding = _normalize_encoding(encoding) if encoding else None
    if delimiter is not None and (fmt != "csv" or len(delimiter) != 1):
        raise ValueError("delimiter must be one character, and only for fmt='csv'")
    if fmt == "jsonl":
        return _iter_jsonl(stream, encoding)
    if fmt == "csv":
        return _iter_csv(stream, encoding, delimiter)
    if fmt == "json":
        return _iter_json_rows(stream, encoding)
    if fmt == "label_studio":
        return _iter_label_studio(stream, encoding)
    from . import dataset_readers  # it imports this module's row types

    if fmt == "parquet":
        return dataset_readers.iter_parquet(stream)
    if fmt == "hf_dataset":
        return dataset_readers.iter_hf_dataset(stream)
    return _iter_conll(stream, encoding)


def _iter_conll(stream: BinaryIO, encoding: str | None) -> Iterator[RawRow | RowProblem]:
    from . import dataset_readers

    lineno = 0

    def lines() -> Iterator[str]:
        nonlocal lineno
        pending = ""
        for text in _open_text(stream, encoding):
            pending += text
            *complete, pending = pending.split("\n")
            for line in complete:
                lineno += 1
                yield line
            if len(pending) > MAX_ROW_CHARS:
                raise _RowTooLong
        if pending:
            lineno += 1
            yield pending

    try:
        yield from dataset_readers.iter_conll(lines())
    except _DecodeFailure as failure:
        raise ImportFileError(f"line {lineno + 1}: {failure.message}") from None
    except _RowTooLong:
        raise ImportFileError(
            f"line {lineno + 1} is longer than {MAX_ROW_CHARS} characters"
        ) from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


# NaN and Infinity are accepted by the json module but by no JSON database column.
_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


# --------------------------------------------------------------------------- #
# JSON Lines


def _iter_jsonl(stream: BinaryIO, encoding: str | None) -> Iterator[RawRow | RowProblem]:
    decode = _decode_json
    lineno = 0
    blank = 0
    pending: list[str] = []
    pending_chars = 0
    try:
        for text in _open_text(stream, encoding):
            lines = text.split("\n")
            if len(lines) == 1:  # no line ends in this chunk
                pending.append(text)
                pending_chars += len(text)
                if pending_chars > MAX_ROW_CHARS:
                    raise _RowTooLong
                continue
            if pending:
                pending.append(lines[0])
                lines[0] = "".join(pending)
            pending = [lines.pop()]
            pending_chars = len(pending[0])
            for line in lines:
                lineno += 1
                try:
                    obj = decode(line)
                except ValueError as exc:
                    if not line or line.isspace():
                        blank += 1
                        continue
                    yield RowProblem(lineno, None, f"not valid JSON: {exc}")
                    continue
                except RecursionError:
                    yield RowProblem(lineno, None, "not valid JSON: nested too deeply")
                    continue
                if type(obj) is dict:
                    yield RawRow(lineno, obj)
                else:
                    yield RowProblem(lineno, None, f"expected a JSON object, got {_json_type(obj)}")
    except _DecodeFailure as failure:
        raise ImportFileError(failure.message, row=lineno + 1) from None
    except _RowTooLong:
        raise ImportFileError(
            f"the line is longer than {MAX_ROW_CHARS} characters", row=lineno + 1
        ) from None
    line = "".join(pending)
    if line and not line.isspace():
        yield _jsonl_row(lineno + 1, line)
    elif lineno == blank:
        raise ImportFileError("the file is empty")


def _jsonl_row(lineno: int, line: str) -> RawRow | RowProblem:
    """The slow path of the loop in ``_iter_jsonl``, for the last line."""
    try:
        obj = _decode_json(line)
    except ValueError as exc:
        return RowProblem(lineno, None, f"not valid JSON: {exc}")
    except RecursionError:
        return RowProblem(lineno, None, "not valid JSON: nested too deeply")
    if type(obj) is dict:
        return RawRow(lineno, obj)
    return RowProblem(lineno, None, f"expected a JSON object, got {_json_type(obj)}")


# --------------------------------------------------------------------------- #
# CSV


def _iter_csv(
    stream: BinaryIO, encoding: str | None, delimiter: str | None
) -> Iterator[RawRow | RowProblem]:
    if csv.field_size_limit() < MAX_ROW_CHARS:
        # Process-wide setting; 16 MiB fits a C long on every platform.
        csv.field_size_limit(MAX_ROW_CHARS)
    record = 0  # records read so far, the header included
    try:
        texts = _open_text(stream, encoding)
        first = next(texts, "")
        if delimiter is None:
            delimiter = _sniff_delimiter(first.split("\n", 1)[0])
        reader = csv.reader(_iter_csv_lines(first, texts), delimiter=delimiter)
        header = next(reader, None)
        record = 1
        if not header or not any(name.strip() for name in header):
            for values in reader:  # only whitespace, or no header?
                if any(value.strip() for value in values):
                    raise ImportFileError(
                        "the first line is blank; it must be the CSV header", row=1
                    )
            raise ImportFileError("the file is empty")
        names = _csv_header(header)
        width = len(names)
        json_columns = [
            name
            for name in names
            if name.lower() in CSV_JSON_COLUMNS or name.lower().endswith("_json")
        ]
        for values in reader:
            record += 1
            if len(values) > width:
                if any(values[width:]):
                    yield RowProblem(
                        record,
                        None,
                        f"the record has {len(values)} fields but the header has {width}",
                    )
                    continue
                values = values[:width]  # trailing empty fields, as some exports add
            if not any(values):
                continue  # a blank line, or only delimiters
            data = dict(zip(names, values, strict=False))
            problem = _parse_json_columns(record, data, json_columns) if json_columns else None
            yield problem or RawRow(record, data)
    except _DecodeFailure as failure:
        raise ImportFileError(failure.message, row=record + 1) from None
    except _RowTooLong:
        raise ImportFileError(
            f"the line is longer than {MAX_ROW_CHARS} characters", row=record + 1
        ) from None
    except csv.Error as exc:
        raise ImportFileError(f"malformed CSV ({exc})", row=record + 1) from None


def _sniff_delimiter(line: str) -> str:
    counts = [line.count(candidate) for candidate in CSV_DELIMITERS]
    best = max(counts)
    return CSV_DELIMITERS[counts.index(best)] if best else ","


def _csv_header(header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    seen = set()
    for column, name in enumerate(names, 1):
        if not name:
            raise ImportFileError(f"column {column} of the CSV header has no name", row=1)
        if name in seen:
            raise ImportFileError(f"the CSV header repeats the column name {name!r}", row=1)
        seen.add(name)
    return names


def _parse_json_columns(record: int, data: dict, columns: list[str]) -> RowProblem | None:
    for name in columns:
        value = data.get(name)
        if not value:
            continue
        start = value.lstrip()[:1]
        if start != "{" and start != "[":
            continue
        try:
            data[name] = _decode_json(value)
        except ValueError as exc:
            return RowProblem(record, name, f"not valid JSON: {exc}")
        except RecursionError:
            return RowProblem(record, name, "not valid JSON: nested too deeply")
    return None


def _iter_csv_lines(first: str, texts: Iterator[str]) -> Iterator[str]:
    """Split text into lines the way ``open(newline="")`` does, for ``csv.reader``."""
    pending: list[str] = []
    pending_chars = 0
    text = first
    while True:
        if text:
            if "\n" not in text and "\r" not in text:
                pending.append(text)
                pending_chars += len(text)
                if pending_chars > MAX_ROW_CHARS:
                    raise _RowTooLong
            else:
                if pending:
                    pending.append(text)
                    text = "".join(pending)
                lines = io.StringIO(text, newline="").readlines()
                last = lines[-1]
                if last[-1] == "\n":
                    pending = []
                    pending_chars = 0
                else:  # maybe unfinished; a final "\r" may be half of "\r\n"
                    lines.pop()
                    pending = [last]
                    pending_chars = len(last)
                yield from lines
        text = next(texts, None)
        if text is None:
            break
    if pending:
        yield "".join(pending)


# --------------------------------------------------------------------------- #
# JSON arrays and Label Studio


class _Utf8Reader:
    """A binary ``read()`` over decoded text, re-encoded as UTF-8 for ijson."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = iter(texts)
        self._buffer = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        while self._offset >= len(self._buffer):
            text = next(self._texts, None)
            if text is None:
                return b""
            self._buffer = text.encode("utf-8")
            self._offset = 0
        start = self._offset
        end = len(self._buffer) if size is None or size < 0 else start + size
        self._offset = end
        if start == 0 and end >= len(self._buffer):
            return self._buffer
        return self._buffer[start:end]


def _iter_json_array(stream: BinaryIO, encoding: str | None) -> Iterator[tuple[int, object]]:
    """Yield ``(index, element)`` for the elements of the top-level JSON array."""
    index = 0
    try:
        texts = _open_text(stream, encoding)
        first = ""
        for text in texts:  # leading whitespace does not matter here
            first = text.lstrip()
            if first:
                break
        if not first:
            raise ImportFileError("the file is empty")
        if first[0] != "[":
            if first[0] == "{":
                got = "an object (for one object per line, upload JSON Lines: .jsonl)"
            else:
                got = f"not JSON (it starts with {first[:20]!r})"
            raise ImportFileError(
                f"the file must hold a JSON array of objects, but its top level is {got}"
            )
        reader = _Utf8Reader(_chain_first(first, texts))
        for index, element in enumerate(ijson.items(reader, "item", use_float=True), 1):
            yield index, element
    except _DecodeFailure as failure:
        raise ImportFileError(failure.message, row=index + 1) from None
    except ijson.JSONError as exc:
        detail = str(exc).strip().split("\n", 1)[0].strip()
        raise ImportFileError(f"malformed JSON ({detail})", row=index + 1) from None


def _chain_first(first: str, texts: Iterator[str]) -> Iterator[str]:
    yield first
    yield from texts


def _iter_json_rows(stream: BinaryIO, encoding: str | None) -> Iterator[RawRow | RowProblem]:
    for index, element in _iter_json_array(stream, encoding):
        if type(element) is dict:
            yield RawRow(index, element)
        else:
            yield RowProblem(index, None, f"expected a JSON object, got {_json_type(element)}")


def _iter_label_studio(stream: BinaryIO, encoding: str | None) -> Iterator[RawRow | RowProblem]:
    for index, task in _iter_json_array(stream, encoding):
        yield _label_studio_row(index, task)


def _label_studio_row(index: int, task: object) -> RawRow | RowProblem:
    """Turn a Label Studio task into the row shape used for other formats.

    ``external_id`` is ``data["external_id"]`` when the task data carries one,
    else the Label Studio task id, as a string; ``gold`` comes from the first
    annotation marked ``ground_truth`` (cancelled annotations are passed over).
    """
    if not isinstance(task, dict):
        got = _json_type(task)
        return RowProblem(index, "data", f"expected a Label Studio task object, got {got}")
    data = task.get("data")
    if not isinstance(data, dict):
        if data is None:
            return RowProblem(index, "data", 'the task has no "data" object')
        got = _json_type(data)
        return RowProblem(index, "data", f'the task\'s "data" must be an object, got {got}')
    external_id = data.get("external_id")
    if external_id is None:
        external_id = task.get("id")
    gold = None
    annotations = task.get("annotations")
    if annotations is None:
        annotations = task.get("completions")  # Label Studio 0.x exports
    if isinstance(annotations, list):
        for annotation in annotations:
            if (
                isinstance(annotation, dict)
                and annotation.get("ground_truth") is True
                and not annotation.get("was_cancelled")
            ):
                result = annotation.get("result")
                gold = label_studio_result_to_answer(result) if isinstance(result, list) else None
                break
    predictions = task.get("predictions")
    return RawRow(
        index,
        {
            "external_id": None if external_id is None else str(external_id),
            "data": data,
            "gold": gold,
            "metadata": {
                "label_studio": {
                    "meta": task.get("meta"),
                    "predictions_count": len(predictions) if isinstance(predictions, list) else 0,
                }
            },
        },
    )


def label_studio_result_to_answer(result: list[dict]) -> dict | None:
    """Convert a Label Studio annotation ``result`` list into an answer dict.

    ``choices`` gives ``{"label": c}`` for one choice, else ``{"labels": [...]}``;
    ``labels`` (text spans) gives ``{"spans": [{"start", "end", "label"}, ...]}``
    with one span per label; ``textarea`` gives ``{"text": lines joined by "\\n"}``;
    ``rating`` gives ``{"rating": n}``; ``pairwise`` gives ``{"choice": "a"}`` for
    left, else ``"b"``. Other result types are ignored. None if nothing converts.
    """
    answer: dict = {}
    spans: list[dict] = []
    for item in result:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        value = item.get("value")
        if not isinstance(value, dict):
            value = {}
        if kind == "choices":
            choices = value.get("choices")
            if isinstance(choices, list) and choices:
                if len(choices) == 1:
                    answer["label"] = choices[0]
                else:
                    answer["labels"] = list(choices)
        elif kind == "labels":
            start, end, labels = value.get("start"), value.get("end"), value.get("labels")
            if start is not None and end is not None and isinstance(labels, list):
                spans.extend({"start": start, "end": end, "label": label} for label in labels)
        elif kind == "textarea":
            text = value.get("text")
            if isinstance(text, list):
                answer["text"] = "\n".join(str(line) for line in text)
            elif isinstance(text, str):
                answer["text"] = text
        elif kind == "rating":
            if "rating" in value:
                answer["rating"] = value["rating"]
        elif kind == "pairwise":
            selected = value.get("selected", item.get("selected"))
            if selected is not None:
                answer["choice"] = "a" if selected == "left" else "b"
    if spans:
        answer["spans"] = spans
    return answer or None
