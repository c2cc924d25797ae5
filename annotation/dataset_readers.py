"""Import readers for binary and column formats: Parquet, Hugging Face datasets
saved to disk (uploaded as a zip or tar of the folder) and CoNLL/BIO.

Like import_readers (which dispatches here), no Django: bytes in, ``RawRow``
and ``RowProblem`` out, ``ImportFileError`` for a file that cannot be read at
all. Parquet and Arrow are read one record batch at a time, so memory stays
flat; an archive is unpacked to a temporary folder first (bounded in size and
in members, and never outside that folder).
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .import_readers import HEAD_SIZE, ImportFileError, RawRow, RowProblem, detect_encoding

BATCH_ROWS = 1000
JSON_COLUMNS = frozenset({"gold", "metadata", "data"})
# An uploaded folder unpacks to at most this much, in at most this many members.
MAX_UNPACKED_BYTES = 8 * 1024**3
MAX_MEMBERS = 10_000


def _spooled(stream: BinaryIO) -> tuple[BinaryIO, bool]:
    """A seekable file with the stream's bytes (Parquet reads from the end);
    the second value says whether the caller must close it. A file of nothing
    but whitespace (or a byte order mark) is "the file is empty", as for text."""
    try:
        seekable = stream.seekable()
    except (AttributeError, OSError):
        seekable = False
    if seekable:
        stream.seek(0)
        source, owned = stream, False
    else:
        source, owned = tempfile.TemporaryFile(), True  # noqa: SIM115 (the caller closes it)
        shutil.copyfileobj(stream, source, 1 << 20)
        source.seek(0)
    head = source.read(HEAD_SIZE)
    source.seek(0)
    if len(head) < HEAD_SIZE and _blank(head):
        if owned:
            source.close()
        raise ImportFileError("the file is empty")
    return source, owned


def _blank(head: bytes) -> bool:
    try:
        encoding = detect_encoding(head)
    except ImportFileError:
        return False
    try:
        text = head.decode(encoding)
    except UnicodeDecodeError:
        return False
    return not text.replace("\ufeff", "").strip()


def _row_from_record(index: int, record: dict):
    """A Parquet/Arrow record as an import row: the JSON-text columns data, gold
    and metadata (as this platform's own Parquet export writes them) are parsed."""
    for column in JSON_COLUMNS:
        value = record.get(column)
        if isinstance(value, str):
            if value == "":
                record[column] = None
                continue
            try:
                record[column] = json.loads(value)
            except ValueError as error:
                return RowProblem(index, column, f"not valid JSON: {error}")
    return RawRow(index, record)


# --- Parquet ---------------------------------------------------------------------


def iter_parquet(stream: BinaryIO) -> Iterator:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, owned = _spooled(stream)
    try:
        try:
            parquet = pq.ParquetFile(source)
        except (pa.ArrowException, OSError) as error:
            raise ImportFileError(f"not a Parquet file: {error}") from None
        index = 0
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                for record in batch.to_pylist():
                    index += 1
                    yield _row_from_record(index, record)
        except (pa.ArrowException, OSError) as error:
            raise ImportFileError(f"the Parquet file is damaged: {error}", row=index + 1) from None
    finally:
        if owned:
            source.close()


# --- Hugging Face datasets folders ----------------------------------------------


def _unpack(source: BinaryIO, target: Path) -> None:
    """Unpack a zip or tar (gzip, bzip2, xz) into target, refusing members that
    would land outside it, links, and archives too large unpacked."""
    head = source.read(4)
    source.seek(0)
    total = 0
    if head.startswith(b"PK"):
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as error:
            raise ImportFileError(f"not a readable zip file: {error}") from None
        with archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise ImportFileError(f"the archive has more than {MAX_MEMBERS} files")
            for member in members:
                path = _safe_path(target, member.filename)
                if member.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                total += member.file_size
                if total > MAX_UNPACKED_BYTES:
                    raise ImportFileError("the archive unpacks to more than 8 GiB")
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as inside, path.open("wb") as out:
                    shutil.copyfileobj(inside, out, 1 << 20)
        return
    try:
        archive = tarfile.open(fileobj=source, mode="r:*")  # noqa: SIM115 (with below)
    except tarfile.TarError:
        raise ImportFileError(
            "expected a zip or tar archive of a folder written by datasets' save_to_disk"
        ) from None
    with archive:
        count = 0
        for member in archive:
            count += 1
            if count > MAX_MEMBERS:
                raise ImportFileError(f"the archive has more than {MAX_MEMBERS} files")
            path = _safe_path(target, member.name)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                continue  # links and devices are never followed
            total += member.size
            if total > MAX_UNPACKED_BYTES:
                raise ImportFileError("the archive unpacks to more than 8 GiB")
            path.parent.mkdir(parents=True, exist_ok=True)
            inside = archive.extractfile(member)
            with inside, path.open("wb") as out:
                shutil.copyfileobj(inside, out, 1 << 20)


def _safe_path(target: Path, name: str) -> Path:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts or re.match(r"^[A-Za-z]:", parts[0]):
        raise ImportFileError(f"the archive member {name!r} points outside the folder")
    return target.joinpath(*parts)


def _dataset_root(folder: Path) -> Path:
    """The folder holding dataset_dict.json or state.json: the archive's root or
    the one folder inside it."""
    candidates = sorted(
        {p.parent for p in folder.rglob("dataset_dict.json")},
        key=lambda p: len(p.parts),
    ) or sorted({p.parent for p in folder.rglob("state.json")}, key=lambda p: len(p.parts))
    if not candidates:
        raise ImportFileError(
            "the archive holds no Hugging Face dataset: expected dataset_dict.json or "
            "state.json (a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk)"
        )
    return candidates[0]


def _split_files(root: Path) -> list[tuple[str, list[Path]]]:
    splits: list[tuple[str, Path]] = []
    if (root / "dataset_dict.json").exists():
        try:
            names = json.loads((root / "dataset_dict.json").read_text())["splits"]
        except (ValueError, KeyError, TypeError):
            raise ImportFileError("dataset_dict.json has no list of splits") from None
        splits = [(str(name), _safe_path(root, str(name))) for name in names]
    else:
        splits = [("", root)]
    found = []
    for name, directory in splits:
        state_file = directory / "state.json"
        try:
            state = json.loads(state_file.read_text())
            files = [entry["filename"] for entry in state["_data_files"]]
        except FileNotFoundError:
            raise ImportFileError(f"the split {name!r} has no state.json") from None
        except (ValueError, KeyError, TypeError):
            raise ImportFileError(f"the split {name!r}'s state.json lists no data files") from None
        paths = [_safe_path(directory, str(filename)) for filename in files]
        for path in paths:
            if not path.is_file():
                raise ImportFileError(f"the split {name!r} lacks its data file {path.name}")
        found.append((name or str(state.get("_split") or ""), paths))
    return found


def iter_hf_dataset(stream: BinaryIO) -> Iterator:
    """Rows of every split, in order; a row's metadata notes its split."""
    import pyarrow as pa

    source, owned = _spooled(stream)
    try:
        with tempfile.TemporaryDirectory(prefix="tw-hf-import-") as scratch:
            folder = Path(scratch)
            _unpack(source, folder)
            if owned:
                source.close()
                owned = False
            index = 0
            for split, paths in _split_files(_dataset_root(folder)):
                for path in paths:
                    try:
                        with pa.memory_map(str(path)) as mapped:
                            reader = pa.ipc.open_stream(mapped)
                            for batch in reader:
                                for record in batch.to_pylist():
                                    index += 1
                                    row = _row_from_record(index, record)
                                    if split and hasattr(row, "data"):
                                        _note_split(row.data, split)
                                    yield row
                    except pa.ArrowException as error:
                        raise ImportFileError(
                            f"{path.name} of split {split!r} is not an Arrow stream: {error}",
                            row=index + 1,
                        ) from None
    finally:
        if owned:
            source.close()


def _note_split(record: dict, split: str) -> None:
    metadata = record.get("metadata")
    if metadata is None:
        record["metadata"] = {"split": split}
    elif isinstance(metadata, dict):
        metadata.setdefault("split", split)


# --- CoNLL / BIO -----------------------------------------------------------------
# A sentence (an item) is a run of "token<TAB or space>...<tag>" lines ended by
# a blank line; the tag is the last column. "# id = …" and "# text = …" (or
# "# text_json = …") comments, as this platform's export writes them, give the
# external id and the exact text; without a text comment the tokens are joined
# with spaces (none between two CJK characters).

_TAG = re.compile(r"^(?:O|[BI]-\S+)$")
_CJK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]"
)


def iter_conll(lines: Iterator[str]) -> Iterator:
    """Rows from CoNLL text lines; row = the sentence's number (1-based)."""
    sentence: list[tuple[int, str, str | None]] = []
    comments: dict[str, str] = {}
    number = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if line.startswith("# ") or line.startswith("#\t"):
            key, _, value = line[2:].partition("=")
            if value:
                comments[key.strip()] = value[1:] if value.startswith(" ") else value
            continue
        if not line.strip():
            if sentence:
                number += 1
                yield _conll_row(number, sentence, comments)
            sentence, comments = [], {}
            continue
        if line.startswith("-DOCSTART-"):
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        token = columns[0]
        tag = columns[-1] if len(columns) > 1 else None
        sentence.append((lineno, token, tag))
    if sentence:
        number += 1
        yield _conll_row(number, sentence, comments)


def _conll_row(number: int, sentence, comments: dict[str, str]):
    if "text_json" in comments:
        try:
            text = json.loads(comments["text_json"])
        except ValueError as error:
            return RowProblem(number, "text", f"the text_json comment is not JSON: {error}")
    elif "text" in comments:
        text = comments["text"]
    else:
        text = None
    tokens = [token for _, token, _ in sentence]
    if text is None:
        text = ""
        for token in tokens:
            if text and not (_CJK.match(text[-1]) and _CJK.match(token[0])):
                text += " "
            text += token
    offsets = []
    cursor = 0
    for lineno, token, _ in sentence:
        found = text.find(token, cursor)
        if found < 0 or text[cursor:found].strip():
            return RowProblem(
                number, "text", f"line {lineno}: the token {token!r} is not next in the text"
            )
        offsets.append((found, found + len(token)))
        cursor = found + len(token)
    tagged = [tag for _, _, tag in sentence]
    row = {"data": {"text": text}}
    if comments.get("id"):
        row["external_id"] = comments["id"]
    if any(tag is not None for tag in tagged):
        spans = []
        open_span = None
        for (lineno, _token, tag), (start, end) in zip(sentence, offsets, strict=True):
            if tag is None or not _TAG.match(tag):
                return RowProblem(
                    number, "gold", f"line {lineno}: expected a BIO tag (O, B-X, I-X), got {tag!r}"
                )
            if tag == "O":
                open_span = None
                continue
            kind, label = tag[0], tag[2:]
            if kind == "I" and (open_span is None or open_span["label"] != label):
                return RowProblem(
                    number, "gold", f"line {lineno}: {tag} does not continue a {label} span"
                )
            if kind == "B":
                open_span = {"start": start, "end": end, "label": label}
                spans.append(open_span)
            else:
                open_span["end"] = end
        row["gold"] = {"spans": spans}
    return RawRow(number, row)
