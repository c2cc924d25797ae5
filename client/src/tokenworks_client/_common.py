"""What the synchronous and asynchronous clients share: no I/O here."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import IO, Any

from ._operations import OPERATIONS, Operation

__version__ = "0.1.0"
USER_AGENT = f"tokenworks-client/{__version__}"
API_PREFIX = "/api/v1/"

JSON = dict[str, Any]
# (bytes done, bytes in all or None when unknown)
ProgressCallback = Callable[[int, int | None], None]
# Called with a job's state at each poll while waiting for it.
JobCallback = Callable[[JSON], None]

# How each kind of job ends: a wait returns on the first set, raises JobFailed on the second.
JOB_ENDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "import": (frozenset({"succeeded"}), frozenset({"failed"})),
    "export": (frozenset({"succeeded"}), frozenset({"failed"})),
    # "partial": finished, some items without an answer (see the run's failures).
    "prelabel": (frozenset({"succeeded", "partial"}), frozenset({"failed", "cancelled"})),
    "finetune": (frozenset({"succeeded"}), frozenset({"failed", "cancelled"})),
}


def api_base(url: str) -> str:
    """The API root for a server address: "https://host" -> "https://host/api/v1/"."""
    url = url.rstrip("/")
    if url.endswith(API_PREFIX.rstrip("/")):
        return url + "/"
    return url + API_PREFIX


def operation(name: str) -> Operation:
    return OPERATIONS[name]


def check_arguments(
    name: str, op: Operation, query: Mapping[str, Any] | None, body: Mapping[str, Any] | None
) -> None:
    """Refuse what the operation does not declare, before any request is made."""
    unknown_query = set(query or ()) - op.query
    if unknown_query:
        raise TypeError(f"{name}: unknown query parameter(s) {sorted(unknown_query)}")
    unknown_body = set(body or ()) - op.body
    if unknown_body:
        raise TypeError(f"{name}: unknown field(s) {sorted(unknown_body)}")


def clean_query(query: Mapping[str, Any] | None) -> dict[str, Any]:
    """None means "not given"; booleans go as the API spells them."""
    out: dict[str, Any] = {}
    for key, value in (query or {}).items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


class ProgressReader:
    """A file wrapper that reports how much of it was read (httpx streams the
    upload from it in chunks, so memory stays flat whatever the file's size)."""

    def __init__(self, file: IO[bytes], on_progress: ProgressCallback | None) -> None:
        self._file = file
        self._on_progress = on_progress
        self._done = 0
        self.total = self._length()
        self.name = os.path.basename(str(getattr(file, "name", "upload")))

    def _length(self) -> int | None:
        try:
            return os.fstat(self._file.fileno()).st_size
        except (AttributeError, OSError, ValueError):
            try:
                here = self._file.tell()
                end = self._file.seek(0, os.SEEK_END)
                self._file.seek(here)
                return end
            except (AttributeError, OSError):
                return None

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        if whence == os.SEEK_SET:
            self._done = position  # a retry starts the upload again
        return position

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        if chunk:
            self._done += len(chunk)
            if self._on_progress is not None:
                self._on_progress(self._done, self.total)
        return chunk
