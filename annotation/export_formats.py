"""Export writers for the formats the training world reads.

Parquet (pyarrow), Hugging Face ``datasets`` folders (what ``save_to_disk``
writes, which ``datasets.load_from_disk`` reads back), Label Studio's JSON
export and CoNLL/BIO for span projects. Every writer takes rows as an iterator
and writes them in record batches of ``BATCH_ROWS``, so memory stays flat
however large the project; the binary ones write to a file the caller gives.

Results and annotations keep the item's data and the answer as JSON text
columns (their keys differ from project to project); dataset versions, whose
records have a fixed shape per training format, get native nested columns.
"""

import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from .task_types import task_type_spec

BATCH_ROWS = 2000

# --- shapes ---------------------------------------------------------------------

RESULTS_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("external_id", pa.string()),
        ("data", pa.string()),  # JSON
        ("answer", pa.string()),  # JSON
        ("label", pa.string()),
        ("confidence", pa.float64()),
        ("method", pa.string()),
        ("agreement", pa.float64()),
        ("approved", pa.bool_()),
        ("annotations", pa.int64()),
        ("reviewed", pa.bool_()),
    ]
)
ANNOTATIONS_SCHEMA = pa.schema(
    [
        ("annotation_id", pa.int64()),
        ("item_id", pa.int64()),
        ("external_id", pa.string()),
        ("annotator", pa.int64()),  # pseudonymous: a stable number, never a person
        ("answer", pa.string()),  # JSON
        ("status", pa.string()),
        ("gold_correct", pa.bool_()),
        ("time_spent_ms", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
# The training formats' records (annotation.task_types' training_record).
TRAINING_SCHEMAS = {
    "openai_chat": pa.schema([("messages", pa.list_(_MESSAGE))]),
    "dpo": pa.schema([("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]),
    "openai_preference": pa.schema(
        [
            ("input", pa.struct([("messages", pa.list_(_MESSAGE))])),
            ("preferred_output", pa.list_(_MESSAGE)),
            ("non_preferred_output", pa.list_(_MESSAGE)),
        ]
    ),
}


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def results_records(project, results) -> Iterator[dict]:
    spec = task_type_spec(project.task_type)
    for result in results:
        label = spec.results_label(result.answer)
        yield {
            "item_id": result.item_id,
            "external_id": result.item__external_id,
            "data": _json(result.item__data),
            "answer": _json(result.answer),
            "label": None if label in (None, "") else str(label),
            "confidence": result.confidence,
            "method": result.method,
            "agreement": result.agreement,
            "approved": result.approved,
            "annotations": len(result.provenance.get("annotations", [])),
            "reviewed": result.reviewed_by_id is not None,
        }


def annotations_records(rows) -> Iterator[dict]:
    for pk, item_id, external_id, annotator_id, answer, status, gold, spent, created in rows:
        yield {
            "annotation_id": pk,
            "item_id": item_id,
            "external_id": external_id,
            "annotator": annotator_id,
            "answer": _json(answer),
            "status": status,
            "gold_correct": gold,
            "time_spent_ms": spent,
            "created_at": created,
        }


# --- record batches -------------------------------------------------------------


def record_batches(
    records: Iterable[dict], schema: pa.Schema, on_batch: Callable[[], None] | None = None
) -> Iterator[pa.RecordBatch]:
    """Records as Arrow batches of BATCH_ROWS; a record that does not fit the
    schema raises ValueError naming its row (1-based) and field."""
    batch: list[dict] = []
    first_row = 1
    for record in records:
        batch.append(record)
        if len(batch) >= BATCH_ROWS:
            yield _batch(batch, schema, first_row)
            first_row += len(batch)
            batch = []
            if on_batch is not None:
                on_batch()
    if batch:
        yield _batch(batch, schema, first_row)


def _batch(records: list[dict], schema: pa.Schema, first_row: int) -> pa.RecordBatch:
    try:
        return pa.RecordBatch.from_pylist(records, schema=schema)
    except (pa.ArrowException, TypeError, ValueError):
        # Find the culprit: one record at a time, column by column.
        for offset, record in enumerate(records):
            for field in schema:
                try:
                    pa.array([record.get(field.name)], type=field.type)
                except (pa.ArrowException, TypeError, ValueError) as error:
                    raise ValueError(
                        f"row {first_row + offset}: field {field.name!r} does not fit "
                        f"{field.type}: {error}"
                    ) from None
        raise


def parquet_write(batches: Iterable[pa.RecordBatch], schema: pa.Schema, out: BinaryIO | str) -> int:
    """Write the batches as one Parquet file (zstd); the number of rows."""
    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


# --- Hugging Face datasets folders ----------------------------------------------
# datasets' save_to_disk writes, per split: the rows as Arrow IPC *stream*
# files (data-00000-of-00001.arrow), dataset_info.json and state.json; a
# DatasetDict adds dataset_dict.json listing the splits. load_from_disk reads
# exactly these; features left out of dataset_info.json are taken from the
# Arrow schema, so the folder does not depend on one version's feature names.

HF_DATA_FILE = "data-00000-of-00001.arrow"


def hf_split_write(
    directory: Path, split: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema, info: dict
) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    rows = 0
    with (
        pa.OSFile(str(directory / HF_DATA_FILE), "wb") as sink,
        pa.ipc.new_stream(sink, schema) as writer,
    ):
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    (directory / "dataset_info.json").write_text(
        json.dumps(
            {
                "description": info.get("description", ""),
                "citation": "",
                "homepage": "",
                "license": "",
                "splits": {split: {"name": split, "num_examples": rows}},
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    fingerprint = hashlib.sha256(
        f"{info.get('fingerprint', '')}:{split}:{rows}".encode()
    ).hexdigest()[:16]
    (directory / "state.json").write_text(
        json.dumps(
            {
                "_data_files": [{"filename": HF_DATA_FILE}],
                "_fingerprint": fingerprint,
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": split,
            },
            indent=2,
        )
    )
    return rows


def hf_dict_write(directory: Path, splits: list[str]) -> None:
    (directory / "dataset_dict.json").write_text(json.dumps({"splits": splits}))


def folder_zip(directory: Path, out: BinaryIO, arcroot: str) -> None:
    """The folder as a zip whose entries sit under arcroot/ (unzip, then load_from_disk)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, f"{arcroot}/{path.relative_to(directory).as_posix()}")


def hf_zip_write(
    splits: dict[str, Iterable[pa.RecordBatch]],
    schema: pa.Schema,
    out: BinaryIO,
    *,
    name: str,
    info: dict,
) -> int:
    """A DatasetDict folder with the given splits, zipped under name/; the rows."""
    rows = 0
    with tempfile.TemporaryDirectory(prefix="tw-hf-") as scratch:
        root = Path(scratch) / name
        for split, batches in splits.items():
            rows += hf_split_write(root / split, split, batches, schema, info)
        hf_dict_write(root, list(splits))
        folder_zip(root, out, name)
    return rows


# --- dataset versions -------------------------------------------------------------


def jsonl_records(stream: BinaryIO) -> Iterator[dict]:
    for line in stream:
        if line.strip():
            yield json.loads(line)


def training_schema(fmt: str, sample: Iterable[dict]) -> pa.Schema:
    """The fixed schema of a training format, or (a format added later) the one
    Arrow infers from the first batch."""
    if fmt in TRAINING_SCHEMAS:
        return TRAINING_SCHEMAS[fmt]
    return pa.Table.from_pylist(list(sample)).schema


# --- Label Studio ------------------------------------------------------------------


def label_studio_result(task_type: str, answer: dict, data: dict) -> list[dict]:
    """An answer as Label Studio's annotation result list (the inverse of
    import_readers.label_studio_result_to_answer)."""
    result: list[dict] = []
    if not isinstance(answer, dict):
        return result
    to_name = "text"
    if "label" in answer:
        result.append(
            {
                "from_name": "label",
                "to_name": to_name,
                "type": "choices",
                "value": {"choices": [answer["label"]]},
            }
        )
    if "labels" in answer:
        result.append(
            {
                "from_name": "labels",
                "to_name": to_name,
                "type": "choices",
                "value": {"choices": list(answer["labels"])},
            }
        )
    text = data.get("text") if isinstance(data, dict) else None
    for index, span in enumerate(answer.get("spans") or []):
        value = {"start": span["start"], "end": span["end"], "labels": [span["label"]]}
        if isinstance(text, str):
            value["text"] = text[span["start"] : span["end"]]
        result.append(
            {
                "id": f"s{index}",
                "from_name": "label",
                "to_name": to_name,
                "type": "labels",
                "value": value,
            }
        )
    if "text" in answer:
        result.append(
            {
                "from_name": "answer",
                "to_name": to_name,
                "type": "textarea",
                "value": {"text": [answer["text"]]},
            }
        )
    if "rating" in answer:
        result.append(
            {
                "from_name": "rating",
                "to_name": to_name,
                "type": "rating",
                "value": {"rating": answer["rating"]},
            }
        )
    if answer.get("choice") in ("a", "b"):
        selected = "left" if answer["choice"] == "a" else "right"
        result.append(
            {
                "from_name": "comparison",
                "to_name": to_name,
                "type": "pairwise",
                "value": {"selected": selected},
            }
        )
    return result


def label_studio_lines(project, results) -> Iterator[str]:
    """Label Studio's JSON export: one task per item, its final answer as the
    task's (ground-truth) annotation; external_id rides in the task data so an
    import here keeps it."""
    yield "[\n"
    first = True
    for result in results:
        data = dict(result.item__data or {})
        data.setdefault("external_id", result.item__external_id)
        task = {
            "id": result.item_id,
            "data": data,
            "annotations": [
                {
                    "result": label_studio_result(project.task_type, result.answer, data),
                    "ground_truth": True,
                    "was_cancelled": False,
                    "meta": {
                        "method": result.method,
                        "confidence": result.confidence,
                        "agreement": result.agreement,
                        "approved": result.approved,
                    },
                }
            ],
            "predictions": [],
        }
        yield ("" if first else ",\n") + json.dumps(task, ensure_ascii=False)
        first = False
    yield "\n]\n"


# --- CoNLL / BIO -----------------------------------------------------------------
# One token per line, "token<TAB>tag", a blank line after each item. Comment
# lines carry what BIO cannot: the item's external id and its exact text, so an
# import rebuilds the same text and character offsets. Chinese (and other CJK)
# characters are one token each, as Chinese NER corpora have them; other text
# splits at whitespace, and at every span edge so each span is whole tokens.

_CJK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]"
)


def conll_tokens(text: str, edges: set[int]) -> list[tuple[int, int]]:
    tokens: list[tuple[int, int]] = []
    start = None
    for index, char in enumerate(text):
        if char.isspace():
            if start is not None:
                tokens.append((start, index))
                start = None
            continue
        if _CJK.match(char):
            if start is not None:
                tokens.append((start, index))
                start = None
            tokens.append((index, index + 1))
            continue
        if start is not None and index in edges:
            tokens.append((start, index))
            start = None
        if start is None:
            start = index
    if start is not None:
        tokens.append((start, len(text)))
    return tokens


def conll_item_lines(external_id: str, text: str, spans: list[dict]) -> Iterator[str]:
    # Overlapping spans cannot all be BIO: the earlier (then longer) one is kept.
    kept: list[dict] = []
    for span in sorted(spans, key=lambda s: (s["start"], -s["end"])):
        if not kept or span["start"] >= kept[-1]["end"]:
            kept.append(span)
    edges = {s["start"] for s in kept} | {s["end"] for s in kept}
    yield f"# id = {external_id}\n"
    if "\n" in text or "\r" in text or text != text.strip():
        yield f"# text_json = {json.dumps(text, ensure_ascii=False)}\n"
    else:
        yield f"# text = {text}\n"
    position = 0
    for start, end in conll_tokens(text, edges):
        while position < len(kept) and kept[position]["end"] <= start:
            position += 1
        tag = "O"
        if position < len(kept) and kept[position]["start"] <= start < kept[position]["end"]:
            span = kept[position]
            tag = ("B-" if start == span["start"] else "I-") + span["label"]
        yield f"{text[start:end]}\t{tag}\n"
    yield "\n"


def conll_lines(project, results) -> Iterator[str]:
    for result in results:
        text = (result.item__data or {}).get("text", "")
        spans = (result.answer or {}).get("spans") or []
        yield from conll_item_lines(result.item__external_id, text, spans)


def file_size(out: BinaryIO) -> int:
    out.flush()
    return os.fstat(out.fileno()).st_size
