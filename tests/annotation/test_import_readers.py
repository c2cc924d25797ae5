"""Tests for annotation.import_readers: streaming import files into raw rows."""

import codecs
import io
import json
import pickle
import tracemalloc

import pytest

from annotation import import_readers
from annotation.import_readers import (
    FORMATS,
    HEAD_SIZE,
    ImportFileError,
    RawRow,
    RowProblem,
    detect_encoding,
    detect_format,
    iter_rows,
    label_studio_result_to_answer,
    read_head,
)


class ReadOnlyStream:
    """Exposes only read(), like an upload that cannot seek; reads may be short."""

    def __init__(self, data: bytes, max_read: int | None = None) -> None:
        self._data = data
        self._offset = 0
        self._max_read = max_read

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._offset + size
        if self._max_read is not None:
            end = min(end, self._offset + self._max_read)
        data = self._data[self._offset : end]
        self._offset += len(data)
        return data


class GeneratedJsonl:
    """A non-seekable stream whose JSONL lines are made on demand."""

    def __init__(self, rows: int) -> None:
        self._lines = (
            b'{"text": "generated row number %07d", "external_id": "e%07d"}\n' % (i, i)
            for i in range(1, rows + 1)
        )
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        pieces = [self._rest]
        have = len(self._rest)
        while have < size:
            line = next(self._lines, None)
            if line is None:
                break
            pieces.append(line)
            have += len(line)
        data = b"".join(pieces)
        self._rest = data[size:]
        return data[:size]


def rows(data: bytes, fmt: str, **kwargs) -> list:
    return list(iter_rows(io.BytesIO(data), fmt=fmt, **kwargs))


def file_error(data: bytes, fmt: str, **kwargs) -> ImportFileError:
    with pytest.raises(ImportFileError) as info:
        rows(data, fmt, **kwargs)
    return info.value


# --------------------------------------------------------------------------- #
# The error and row types


def test_import_file_error_names_the_row_and_survives_pickling():
    error = ImportFileError("invalid GB18030 byte sequence", row=1234)
    assert str(error) == "row 1234: invalid GB18030 byte sequence"
    assert error.message == "invalid GB18030 byte sequence"
    assert error.row == 1234
    assert isinstance(error, ValueError)
    assert str(ImportFileError("the file is empty")) == "the file is empty"
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.message, copy.row, str(copy)) == (error.message, 1234, str(error))


def test_rows_are_frozen():
    row = RawRow(3, {"a": 1})
    with pytest.raises(AttributeError):
        row.row = 4
    assert RowProblem(2, "gold", "bad") == RowProblem(2, "gold", "bad")


def test_unknown_format_is_rejected_at_once_listing_the_known_ones():
    with pytest.raises(ImportFileError) as info:
        iter_rows(io.BytesIO(b"{}"), fmt="xlsx")
    assert "'xlsx'" in str(info.value)
    for fmt in FORMATS:
        assert fmt in str(info.value)
    assert FORMATS == (
        "jsonl",
        "json",
        "csv",
        "label_studio",
        "conll",
        "parquet",
        "hf_dataset",
    )


def test_unknown_encoding_is_rejected():
    with pytest.raises(ImportFileError, match="unknown text encoding 'no-such-codec'"):
        iter_rows(io.BytesIO(b"{}"), fmt="jsonl", encoding="no-such-codec")


# --------------------------------------------------------------------------- #
# JSON Lines


def test_jsonl_rows_are_numbered_by_physical_line_and_blank_lines_count():
    data = b'{"text": "a"}\n\n   \n{"text": "b", "n": 1.5}\r\n{"text": "c", "k": [1, 2]}'
    assert rows(data, "jsonl") == [
        RawRow(1, {"text": "a"}),
        RawRow(4, {"text": "b", "n": 1.5}),
        RawRow(5, {"text": "c", "k": [1, 2]}),
    ]


def test_jsonl_bad_lines_are_row_problems_and_later_rows_still_come():
    data = b'{"a": 1}\n{"a": \n[1, 2]\n"text"\n{"a": 1} {"b": 2}\n{"a": NaN}\n{"a": 2}\n'
    result = rows(data, "jsonl")
    assert result[0] == RawRow(1, {"a": 1})
    assert result[1].row == 2 and result[1].field is None
    assert result[1].message.startswith("not valid JSON: Expecting value")
    assert result[2] == RowProblem(3, None, "expected a JSON object, got list")
    assert result[3] == RowProblem(4, None, "expected a JSON object, got string")
    assert result[4].row == 5 and result[4].message.startswith("not valid JSON: Extra data")
    assert result[5] == RowProblem(6, None, "not valid JSON: NaN is not valid JSON")
    assert result[6] == RawRow(7, {"a": 2})
    assert len(result) == 7


def test_jsonl_line_longer_than_the_limit_is_a_file_error(monkeypatch):
    monkeypatch.setattr(import_readers, "MAX_ROW_CHARS", 200_000)
    data = b'{"a": 1}\n{"a": "' + b"x" * 400_000 + b'"}\n{"a": 3}\n'
    error = file_error(data, "jsonl")
    assert error.row == 2
    assert "longer than 200000 characters" in error.message


def test_jsonl_across_tiny_reads_keeps_multibyte_characters_and_line_ends():
    lines = [{"text": f"第{i}行 ✓ é", "i": i} for i in range(1, 200)]
    data = "\r\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    result = list(iter_rows(ReadOnlyStream(data, max_read=7), fmt="jsonl"))
    assert result == [RawRow(i, line) for i, line in enumerate(lines, 1)]


# --------------------------------------------------------------------------- #
# JSON arrays


def test_json_rows_are_numbered_by_element_index():
    data = b' [ {"text": "a", "n": 1, "x": 2.5}, 7, {"text": "b"}, null, {"text": "c"} ] '
    result = rows(data, "json")
    assert result == [
        RawRow(1, {"text": "a", "n": 1, "x": 2.5}),
        RowProblem(2, None, "expected a JSON object, got number"),
        RawRow(3, {"text": "b"}),
        RowProblem(4, None, "expected a JSON object, got null"),
        RawRow(5, {"text": "c"}),
    ]
    assert type(result[0].data["x"]) is float  # never Decimal
    assert type(result[0].data["n"]) is int


def test_json_empty_array_has_no_rows():
    assert rows(b"[]", "json") == []


def test_json_top_level_object_is_a_file_error():
    error = file_error(b'{"text": "a"}', "json")
    assert error.row is None
    assert "top level is an object" in str(error)
    assert ".jsonl" in str(error)


def test_json_not_json_at_all_is_a_file_error():
    error = file_error(b"text,label\nhello,1\n", "json")
    assert "top level is not JSON" in str(error)


def test_malformed_json_midway_names_the_element_index():
    elements = [json.dumps({"text": f"row {i}"}) for i in range(1, 3001)]
    elements[2499] = '{"text": "row 2500", oops}'
    error = file_error(("[" + ",\n".join(elements) + "]").encode(), "json")
    assert error.row == 2500
    assert str(error).startswith("row 2500: malformed JSON (")


def test_truncated_json_array_names_the_element_reached():
    error = file_error(b'[{"a": 1}, {"a": 2}, {"a":', "json")
    assert error.row == 3
    assert "malformed JSON" in error.message


def test_json_rows_are_yielded_before_a_later_error():
    iterator = iter_rows(io.BytesIO(b'[{"a": 1}, {"a": 2}, x]'), fmt="json")
    assert next(iterator) == RawRow(1, {"a": 1})
    assert next(iterator) == RawRow(2, {"a": 2})
    with pytest.raises(ImportFileError) as info:
        next(iterator)
    assert info.value.row == 3


# --------------------------------------------------------------------------- #
# CSV


def test_csv_rows_are_record_numbers_with_the_header_as_row_1():
    data = (
        b"text, label ,score\r\n"
        b'"first line\r\nsecond line",pos,1\r\n'
        b"\r\n"
        b"plain,neg,2\r\n"
        b'"say ""hi""",neu\r\n'
    )
    assert rows(data, "csv") == [
        RawRow(2, {"text": "first line\r\nsecond line", "label": "pos", "score": "1"}),
        RawRow(4, {"text": "plain", "label": "neg", "score": "2"}),
        RawRow(5, {"text": 'say "hi"', "label": "neu"}),  # fewer fields: absent
    ]


def test_csv_embedded_newlines_across_tiny_reads():
    records = [f'"line {i}\nstill {i}",{i}' for i in range(2, 60)]
    data = ("text,n\n" + "\n".join(records) + "\n").encode()
    result = list(iter_rows(ReadOnlyStream(data, max_read=5), fmt="csv"))
    assert result == [
        RawRow(i, {"text": f"line {i}\nstill {i}", "n": str(i)}) for i in range(2, 60)
    ]


def test_csv_extra_fields_are_a_row_problem_but_trailing_empty_ones_are_not():
    data = b"a,b\n1,2,3\n4,5,,\n6,7\n"
    assert rows(data, "csv") == [
        RowProblem(2, None, "the record has 3 fields but the header has 2"),
        RawRow(3, {"a": "4", "b": "5"}),
        RawRow(4, {"a": "6", "b": "7"}),
    ]


def test_csv_rows_of_only_delimiters_are_skipped_but_counted():
    assert rows(b"a,b\n,\n1,2\n", "csv") == [RawRow(3, {"a": "1", "b": "2"})]


def test_csv_duplicate_header_is_a_file_error():
    error = file_error(b"text,label, text\nx,y,z\n", "csv")
    assert error.row == 1
    assert str(error) == "row 1: the CSV header repeats the column name 'text'"


def test_csv_empty_header_name_is_a_file_error():
    error = file_error(b"text,,label\nx,y,z\n", "csv")
    assert str(error) == "row 1: column 2 of the CSV header has no name"


def test_csv_blank_first_line_is_a_file_error():
    error = file_error(b"\ntext\nx\n", "csv")
    assert str(error) == "row 1: the first line is blank; it must be the CSV header"
    assert str(file_error(b" , \nx,y\n", "csv")) == str(error)


def test_csv_json_columns_are_parsed_and_bad_json_names_the_field():
    data = (
        b"text,gold,metadata,choices_json,note\n"
        b'a,"{""label"": ""pos""}","{""src"": 1}","[""x"", ""y""]",[not json]\n'
        b"b,plain gold,,,\n"
        b'c,"{""label"": pos}",,,\n'
        b'd,,,"[1,",\n'
    )
    result = rows(data, "csv")
    assert result[0] == RawRow(
        2,
        {
            "text": "a",
            "gold": {"label": "pos"},
            "metadata": {"src": 1},
            "choices_json": ["x", "y"],
            "note": "[not json]",  # not a JSON column: stays a string
        },
    )
    assert result[1] == RawRow(
        3, {"text": "b", "gold": "plain gold", "metadata": "", "choices_json": "", "note": ""}
    )
    assert result[2].row == 4 and result[2].field == "gold"
    assert result[2].message.startswith("not valid JSON: Expecting value")
    assert result[3].row == 5 and result[3].field == "choices_json"
    assert len(result) == 4


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("text\tlabel\tscore", "\t"), ("text;label;score", ";"), ("text,label,score", ",")],
)
def test_csv_delimiter_is_sniffed_from_the_header(header, delimiter):
    data = f"{header}\n" + delimiter.join(["hello, world", "pos", "1"]) + "\n"
    if delimiter == ",":
        data = f'{header}\n"hello, world",pos,1\n'
    assert rows(data.encode(), "csv") == [
        RawRow(2, {"text": "hello, world", "label": "pos", "score": "1"})
    ]


def test_csv_explicit_tab_delimiter_for_tsv():
    data = b"text\nhello, world; again\n"
    assert rows(data, "csv", delimiter="\t") == [RawRow(2, {"text": "hello, world; again"})]
    # Sniffing a one-column header falls back to a comma, splitting the value.
    assert rows(data, "csv")[0] == RowProblem(
        2, None, "the record has 2 fields but the header has 1"
    )


def test_csv_values_longer_than_the_default_field_limit():
    long_text = "x" * 500_000
    assert rows(f"text\n{long_text}\n".encode(), "csv") == [RawRow(2, {"text": long_text})]


# --------------------------------------------------------------------------- #
# Encodings


def test_utf8_bom_is_dropped():
    bom = codecs.BOM_UTF8
    assert rows(bom + b"text,label\nhi,1\n", "csv") == [RawRow(2, {"text": "hi", "label": "1"})]
    assert rows(bom + b'{"text": "hi"}\n', "jsonl") == [RawRow(1, {"text": "hi"})]
    assert rows(bom + b'[{"text": "hi"}]', "json") == [RawRow(1, {"text": "hi"})]
    # Also when the caller names plain UTF-8.
    assert rows(bom + b'{"text": "hi"}\n', "jsonl", encoding="UTF8") == [RawRow(1, {"text": "hi"})]


def test_gbk_csv_with_chinese_text_is_decoded():
    data = "文本,标签\n你好，世界,正面\n今天天气很好,中性\n".encode("gbk")
    assert detect_encoding(data) == "gb18030"
    assert rows(data, "csv") == [
        RawRow(2, {"文本": "你好，世界", "标签": "正面"}),
        RawRow(3, {"文本": "今天天气很好", "标签": "中性"}),
    ]


def test_gbk_jsonl_with_chinese_text_is_decoded():
    lines = [{"text": "你好，世界", "label": "正面"}, {"text": "数据标注平台", "label": "中性"}]
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode("gbk")
    assert rows(data, "jsonl") == [RawRow(1, lines[0]), RawRow(2, lines[1])]
    # Read in small pieces, so that two-byte characters straddle the reads.
    streamed = list(iter_rows(ReadOnlyStream(data, max_read=3), fmt="jsonl"))
    assert streamed == [RawRow(1, lines[0]), RawRow(2, lines[1])]


def test_gbk_json_array_is_transcoded_for_ijson():
    data = json.dumps([{"text": "标注"}, {"text": "平台"}], ensure_ascii=False).encode("gbk")
    assert rows(data, "json") == [RawRow(1, {"text": "标注"}), RawRow(2, {"text": "平台"})]


def test_utf16_with_bom():
    data = '{"text": "你好"}\n{"text": "ok"}\n'.encode("utf-16")
    assert rows(data, "jsonl") == [RawRow(1, {"text": "你好"}), RawRow(2, {"text": "ok"})]
    assert rows("a,b\n甲,乙\n".encode("utf-16"), "csv") == [RawRow(2, {"a": "甲", "b": "乙"})]


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("utf-16", "utf-16-le"),
        ("utf-16", "utf-16-be"),
        ("UTF16", "utf-16-le"),
        ("utf-32", "utf-32-le"),
        ("utf-32", "utf-32-be"),
    ],
)
def test_utf16_and_utf32_without_a_bom_are_read_in_the_order_their_letters_show(declared, codec):
    data = '{"text": "你好"}\n{"text": "ok"}\n'.encode(codec)
    assert rows(data, "jsonl", encoding=declared) == [
        RawRow(1, {"text": "你好"}),
        RawRow(2, {"text": "ok"}),
    ]


def test_utf16_without_a_bom_and_no_sign_of_its_order_is_refused_not_guessed():
    chinese = ("文本\n" + "你好世界" * 20 + "\n").encode("utf-16-be")
    error = file_error(chinese, "csv", encoding="utf-16")
    assert error.row is None
    assert error.message.startswith(
        "the file was declared UTF-16 but has no UTF-16 byte order mark at byte 0"
    )
    assert "give the encoding as utf-16-le or utf-16-be" in error.message
    # A UTF-8 file declared UTF-16 is told so.
    error = file_error('{"text": "你好"}\n'.encode(), "jsonl", encoding="utf-16")
    assert "It reads as UTF-8" in error.message


def _lines_past_the_head(count: int) -> list[bytes]:
    lines = [b'{"text": "%s"}\n' % (b"%05d" % i * 15) for i in range(1, count + 1)]
    assert sum(map(len, lines)) > HEAD_SIZE
    return lines


def test_invalid_utf8_after_the_head_names_the_jsonl_row():
    lines = _lines_past_the_head(1500)  # about 130 KiB
    lines[1200] = b'{"text": "caf\xe9"}\n'  # Latin-1, after 100 KiB
    assert sum(map(len, lines[:1200])) > 100 * 1024
    iterator = iter_rows(ReadOnlyStream(b"".join(lines)), fmt="jsonl")
    good = []
    with pytest.raises(ImportFileError) as info:
        for row in iterator:
            good.append(row)
    assert info.value.row == 1201
    offset = sum(map(len, lines[:1200])) + len(b'{"text": "caf')
    assert str(info.value).startswith(f"row 1201: invalid UTF-8 byte sequence at byte {offset} ")
    assert [row.row for row in good] == list(range(1, 1201))


def test_invalid_utf8_after_the_head_names_the_csv_record():
    body = [b"text,n\n"] + [b'"value %d\nsecond line",%d\n' % (i, i) for i in range(2, 5000)]
    body[4000] = b"bad \xff value,4000\n"  # record 4001
    assert sum(map(len, body[:4000])) > 100 * 1024
    error = file_error(b"".join(body), "csv")
    assert error.row == 4001
    assert "invalid UTF-8 byte sequence" in error.message


def test_invalid_utf8_after_the_head_names_the_json_element():
    elements = [b'{"text": "element %06d padding padding"}' % i for i in range(1, 5001)]
    elements[3999] = b'{"text": "bad \xc3\x28 byte"}'
    data = b"[" + b",\n".join(elements) + b"]"
    assert data.index(b"\xc3\x28") > 100 * 1024
    error = file_error(data, "json")
    assert error.row == 4000
    assert "invalid UTF-8 byte sequence" in error.message


def test_file_truncated_inside_a_character_names_the_last_row():
    data = b'{"a": 1}\n{"a": "\xe4\xb8'
    error = file_error(data, "jsonl", encoding="utf-8")
    assert error.row == 2
    assert error.message == "the file ends in the middle of a UTF-8 character (at byte 16)"


def test_detect_encoding():
    assert detect_encoding(b'{"text": "plain ascii"}') == "utf-8"
    assert detect_encoding("ünïcödé 中文".encode()) == "utf-8"
    # A character cut by the end of the head buffer is tolerated.
    assert detect_encoding("abc中".encode()[:-1]) == "utf-8"
    assert detect_encoding(codecs.BOM_UTF8 + b"x") == "utf-8-sig"
    assert detect_encoding("x".encode("utf-16-le").join([codecs.BOM_UTF16_LE, b""])) == "utf-16"
    assert detect_encoding(codecs.BOM_UTF16_BE + "x".encode("utf-16-be")) == "utf-16"
    assert detect_encoding("中文标注".encode("gbk")) == "gb18030"
    assert detect_encoding("中文标注".encode("gb2312")) == "gb18030"
    assert detect_encoding(b"") == "utf-8"
    with pytest.raises(ImportFileError, match="neither UTF-8 nor GB18030/GBK"):
        detect_encoding(b"abc \x80\xff\xfe")


def test_file_that_is_neither_utf8_nor_gb18030_is_a_file_error():
    error = file_error(b"text\nabc \x80\xff\n", "csv")
    assert error.row is None
    assert "re-save it as UTF-8" in str(error)


# --------------------------------------------------------------------------- #
# Empty files


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "data",
    [b"", b" \r\n\t\n  ", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\n\n", " \n".encode("utf-16")],
    ids=["empty", "whitespace", "bom", "bom-and-newlines", "utf16-whitespace"],
)
def test_empty_or_blank_file_is_a_file_error(fmt, data):
    error = file_error(data, fmt)
    assert str(error) == "the file is empty"
    assert error.row is None


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_whitespace_longer_than_the_head_is_empty_too(fmt):
    assert str(file_error(b" \n" * HEAD_SIZE, fmt)) == "the file is empty"


# --------------------------------------------------------------------------- #
# Streams


@pytest.mark.parametrize("max_read", [None, 1000, 1])
def test_non_seekable_stream_with_short_reads(max_read):
    data = b"".join(b'{"i": %d}\n' % i for i in range(1, 3001))
    stream = ReadOnlyStream(data, max_read=max_read)
    assert not hasattr(stream, "seek")
    result = list(iter_rows(stream, fmt="jsonl"))
    assert result == [RawRow(i, {"i": i}) for i in range(1, 3001)]


def test_text_stream_is_refused():
    with pytest.raises(TypeError, match="binary mode"):
        list(iter_rows(io.StringIO('{"a": 1}'), fmt="jsonl"))


def test_read_head_replays_the_head_for_detection_then_reading():
    tasks = [{"id": 1, "data": {"text": "x" * 100}}]
    stream = ReadOnlyStream(json.dumps(tasks * 2000).encode(), max_read=4096)
    head, replay = read_head(stream)
    assert len(head) == HEAD_SIZE
    fmt = detect_format(None, head)
    assert fmt == "label_studio"
    result = list(iter_rows(replay, fmt=fmt))
    assert len(result) == 2000
    assert result[-1].row == 2000
    assert result[-1].data["data"] == {"text": "x" * 100}


def test_streaming_200k_rows_keeps_memory_constant():
    tracemalloc.start()
    try:
        count = 0
        last = None
        for row in iter_rows(GeneratedJsonl(200_000), fmt="jsonl"):
            count += 1
            last = row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert last == RawRow(
        200_000, {"text": "generated row number 0200000", "external_id": "e0200000"}
    )
    # The file is about 13 MB; reading it whole or keeping the rows would be far more.
    assert peak < 3 * 1024 * 1024, f"peak traced memory {peak} bytes"


# --------------------------------------------------------------------------- #
# Format detection


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("items.jsonl", b'{"a": 1}', "jsonl"),
        ("ITEMS.NDJSON", b'{"a": 1}', "jsonl"),
        ("items.csv", b'{"a": 1}', "csv"),  # the extension wins over the content
        ("items.tsv", b"a\tb\n", "csv"),
        ("items.json", b'[{"text": "a"}]', "json"),
        ("items.json", b'[{"data": {"text": "a"}}]', "label_studio"),
        ("items.json", b'[{"data": "not an object"}]', "json"),
        ("items.json", b"[]", "json"),
        ("upload", b'  \n[{"text": "a"}]', "json"),
        ("upload.txt", b'{"text": "a"}\n', "jsonl"),
        (None, b"text,label\n", "csv"),
        (None, b"", "csv"),
        (None, codecs.BOM_UTF8 + b'\n {"a": 1}', "jsonl"),
        (None, codecs.BOM_UTF8 + b'[{"id": 1, "data": {"text": "a"}}]', "label_studio"),
        (None, '[{"data": {"text": "中"}}]'.encode("utf-16"), "label_studio"),
        (None, '[{"text": "中"}]'.encode("gbk"), "json"),
    ],
)
def test_detect_format(filename, head, expected):
    assert detect_format(filename, head) == expected


def test_detect_label_studio_when_data_comes_after_other_keys():
    task = {
        "id": 7,
        "annotations": [{"result": [{"type": "choices", "value": {"choices": ["a"]}}]}],
        "predictions": [],
        "data": {"text": "hello"},
    }
    assert detect_format("export.json", json.dumps([task, task]).encode()) == "label_studio"
    # The nested "data" key of a plain item does not count.
    plain = [{"text": "a", "extra": {"data": {"x": 1}}}]
    assert detect_format("items.json", json.dumps(plain).encode()) == "json"


def test_detect_label_studio_from_a_head_cut_before_the_data_key():
    task = {"id": 1, "annotations": [{"result": [{"value": {"text": ["x" * 100_000]}}]}]}
    head = json.dumps([task]).encode()[:HEAD_SIZE]
    assert detect_format("export.json", head) == "label_studio"
    assert detect_format("items.json", b'[{"text": "' + b"x" * HEAD_SIZE) == "json"


# --------------------------------------------------------------------------- #
# Label Studio


def test_label_studio_result_choices():
    single = [{"type": "choices", "value": {"choices": ["Positive"]}, "from_name": "sentiment"}]
    assert label_studio_result_to_answer(single) == {"label": "Positive"}
    multi = [{"type": "choices", "value": {"choices": ["news", "sports"]}}]
    assert label_studio_result_to_answer(multi) == {"labels": ["news", "sports"]}


def test_label_studio_result_ner_labels():
    result = [
        {"type": "labels", "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]}},
        {
            "type": "labels",
            "value": {"start": 15, "end": 20, "text": "Paris", "labels": ["LOC", "GPE"]},
        },
    ]
    assert label_studio_result_to_answer(result) == {
        "spans": [
            {"start": 0, "end": 5, "label": "PER"},
            {"start": 15, "end": 20, "label": "LOC"},
            {"start": 15, "end": 20, "label": "GPE"},
        ]
    }


def test_label_studio_result_textarea_rating_pairwise():
    textarea = [{"type": "textarea", "value": {"text": ["first line", "second line"]}}]
    assert label_studio_result_to_answer(textarea) == {"text": "first line\nsecond line"}
    assert label_studio_result_to_answer([{"type": "rating", "value": {"rating": 4}}]) == {
        "rating": 4
    }
    left = [{"type": "pairwise", "value": {"selected": "left"}}]
    right = [{"type": "pairwise", "value": {"selected": "right"}}]
    assert label_studio_result_to_answer(left) == {"choice": "a"}
    assert label_studio_result_to_answer(right) == {"choice": "b"}


def test_label_studio_result_unknown_types_are_ignored():
    boxes = [{"type": "rectanglelabels", "value": {"x": 1, "y": 2, "rectanglelabels": ["car"]}}]
    assert label_studio_result_to_answer(boxes) is None
    assert label_studio_result_to_answer([]) is None
    mixed = [*boxes, {"type": "choices", "value": {"choices": ["ok"]}}]
    assert label_studio_result_to_answer(mixed) == {"label": "ok"}


def test_label_studio_tasks_become_rows():
    tasks = [
        {
            "id": 17,
            "data": {"text": "I love it"},
            "annotations": [
                {
                    "ground_truth": False,
                    "result": [{"type": "choices", "value": {"choices": ["No"]}}],
                },
                {
                    "ground_truth": True,
                    "result": [{"type": "choices", "value": {"choices": ["Positive"]}}],
                },
            ],
            "predictions": [{"result": []}, {"result": []}],
            "meta": {"batch": 3},
        },
        {"id": 18, "data": {"text": "meh", "external_id": "client-9"}, "annotations": []},
        {"data": {"text": "no id"}},
        {"id": 20, "annotations": []},
        ["not", "a", "task"],
        {"id": 22, "data": "text only"},
    ]
    result = rows(json.dumps(tasks).encode(), "label_studio")
    assert result[0] == RawRow(
        1,
        {
            "external_id": "17",
            "data": {"text": "I love it"},
            "gold": {"label": "Positive"},
            "metadata": {"label_studio": {"meta": {"batch": 3}, "predictions_count": 2}},
        },
    )
    assert result[1] == RawRow(
        2,
        {
            "external_id": "client-9",
            "data": {"text": "meh", "external_id": "client-9"},
            "gold": None,
            "metadata": {"label_studio": {"meta": None, "predictions_count": 0}},
        },
    )
    assert result[2].row == 3
    assert result[2].data["external_id"] is None
    assert result[2].data["gold"] is None
    assert result[3] == RowProblem(4, "data", 'the task has no "data" object')
    assert result[4] == RowProblem(5, "data", "expected a Label Studio task object, got list")
    assert result[5] == RowProblem(6, "data", 'the task\'s "data" must be an object, got string')
    assert len(result) == 6


def test_label_studio_top_level_object_is_a_file_error():
    error = file_error(b'{"id": 1, "data": {"text": "a"}}', "label_studio")
    assert "top level is an object" in str(error)
