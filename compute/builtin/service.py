"""State of one built-in model server: files, fine-tuning jobs, trained models, all under data_dir.

Layout::

    data_dir/files/file-….json   file object        data_dir/files/file-….data  content
    data_dir/jobs/ftjob-….json   job object         data_dir/jobs/ftjob-….events.json
    data_dir/models/registry.json  {model id: {job, file, sha256, created}}
    data_dir/models/ftjob-….joblib  the classifier heads

Every JSON file is written to a temporary name and renamed, so a crash never leaves
half a file. Model files are loaded only when registry.json (JSON, written by this
server) lists them and their SHA-256 matches: joblib is pickle, and nothing else
dropped into the directory is ever unpickled.

Training runs in one background thread per server, one job at a time, in the order
jobs were created. Jobs that were not finished when the server stopped are queued
again when it starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path

import joblib

from .errors import APIError, invalid, not_found
from .model import BaseModel, FineTunedModel
from .training import DataFileError, evaluate, read_examples, train_heads

BASE_MODEL = "tokenworks-base"
BASE_CREATED = 1735689600  # 2025-01-01T00:00:00Z
OWNER = "tokenworks"
FILE_PURPOSES = {"fine-tune"}
TERMINAL = {"succeeded", "failed", "cancelled"}
METHOD_TYPES = {"supervised", "dpo", "reinforcement"}
MODEL_CACHE_SIZE = 32
EVENT_PAGE_DEFAULT = 20
MAX_PAGE = 100


def _now() -> int:
    return int(time.time())


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def public(record: dict) -> dict:
    """The object as the API shows it: without this server's bookkeeping keys (``_…``)."""
    return {key: value for key, value in record.items() if not key.startswith("_")}


def _page(items: list[dict], after: str | None, limit) -> dict:
    """An OpenAI list page: items after the one with id == after, at most limit."""
    if limit is None:
        limit = EVENT_PAGE_DEFAULT
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise invalid("limit: expected an integer", param="limit") from None
    if not 1 <= limit <= MAX_PAGE:
        raise invalid(f"limit: expected 1 to {MAX_PAGE}", param="limit")
    start = 0
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise invalid(f"after: no item with id {after!r}", param="after")
        start = ids.index(after) + 1
    chunk = items[start : start + limit]
    return {"object": "list", "data": chunk, "has_more": start + limit < len(items)}


class Backend:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / "files"
        self.jobs_dir = self.data_dir / "jobs"
        self.models_dir = self.data_dir / "models"
        for directory in (self.files_dir, self.jobs_dir, self.models_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.base = BaseModel()
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.registry: dict[str, dict] = _read_json(self.models_dir / "registry.json", {})
        self.cache: OrderedDict[str, FineTunedModel] = OrderedDict()
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.worker: threading.Thread | None = None
        self.closed = False
        self._load()

    # --- start-up, shut-down ---------------------------------------------------------

    def _load(self) -> None:
        for path in sorted(self.files_dir.glob("file-*.json")):
            data = _read_json(path, None)
            if data and (self.files_dir / f"{data['id']}.data").exists():
                self.files[data["id"]] = data
        resume = []
        for path in sorted(self.jobs_dir.glob("ftjob-*.json")):
            if path.name.endswith(".events.json"):
                continue
            job = _read_json(path, None)
            if not job:
                continue
            self.jobs[job["id"]] = job
            self.events[job["id"]] = _read_json(self.jobs_dir / f"{job['id']}.events.json", [])
            if job["status"] not in TERMINAL:
                resume.append(job)
        for job in sorted(resume, key=lambda j: j["_seq"]):
            self._set_status(job, "queued")
            self._event(job, "Job re-queued after a server restart")
            self._enqueue(job["id"])

    def _enqueue(self, job_id: str) -> None:
        with self.lock:
            if self.worker is None or not self.worker.is_alive():
                self.worker = threading.Thread(
                    target=self._work, name="builtin-model-trainer", daemon=True
                )
                self.worker.start()
        self.queue.put(job_id)

    def close(self) -> None:
        """Stop the trainer thread after the job it is running (jobs left queued resume later)."""
        self.closed = True
        self.queue.put(None)

    # --- files -----------------------------------------------------------------------

    def create_file(self, source, filename: str, purpose: str) -> dict:
        """source: a binary file object. Copies it under data_dir and returns the file object."""
        if purpose not in FILE_PURPOSES:
            raise invalid(
                f"purpose: the built-in model stores only files with purpose 'fine-tune', "
                f"got {purpose!r}",
                param="purpose",
            )
        file_id = "file-" + secrets.token_hex(12)
        target = self.files_dir / f"{file_id}.data"
        tmp = self.files_dir / f".{file_id}.tmp"
        with tmp.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(tmp, target)
        name = os.path.basename(filename or "upload.jsonl")[:255] or "upload.jsonl"
        data = {
            "id": file_id,
            "object": "file",
            "bytes": target.stat().st_size,
            "created_at": _now(),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "_seq": time.time_ns(),
        }
        with self.lock:
            _write_json(self.files_dir / f"{file_id}.json", data)
            self.files[file_id] = data
        return public(data)

    def get_file(self, file_id: str, param: str = "file_id") -> dict:
        data = self.files.get(file_id)
        if data is None:
            raise not_found(f"No such File object: {file_id}", param=param)
        return public(data)

    def file_path(self, file_id: str) -> Path:
        return self.files_dir / f"{self.get_file(file_id)['id']}.data"

    def list_files(self, purpose: str | None = None) -> dict:
        items = sorted(self.files.values(), key=lambda f: f["_seq"], reverse=True)
        if purpose:
            items = [f for f in items if f["purpose"] == purpose]
        return {"object": "list", "data": [public(f) for f in items], "has_more": False}

    def delete_file(self, file_id: str) -> dict:
        with self.lock:
            self.get_file(file_id)
            self.files.pop(file_id)
            (self.files_dir / f"{file_id}.json").unlink(missing_ok=True)
            (self.files_dir / f"{file_id}.data").unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}

    # --- models ----------------------------------------------------------------------

    def list_models(self) -> dict:
        data = [{"id": BASE_MODEL, "object": "model", "created": BASE_CREATED, "owned_by": OWNER}]
        for model_id, entry in sorted(self.registry.items(), key=lambda kv: kv[1]["created"]):
            data.append(
                {"id": model_id, "object": "model", "created": entry["created"], "owned_by": OWNER}
            )
        return {"object": "list", "data": data}

    def describe_model(self, model_id: str) -> dict:
        for entry in self.list_models()["data"]:
            if entry["id"] == model_id:
                return entry
        raise self.model_not_found(model_id)

    @staticmethod
    def model_not_found(model_id) -> APIError:
        return not_found(
            f"The model `{model_id}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def model(self, model_id: str) -> BaseModel:
        if model_id == BASE_MODEL:
            return self.base
        cached = self.cache.get(model_id)
        if cached is not None:
            return cached
        entry = self.registry.get(model_id)
        if entry is None:
            raise self.model_not_found(model_id)
        with self.lock:
            cached = self.cache.get(model_id)
            if cached is not None:
                return cached
            path = self.models_dir / entry["file"]
            if path.parent != self.models_dir or _sha256(path) != entry["sha256"]:
                raise APIError(
                    f"the stored weights of {model_id} do not match the registry; refusing to load",
                    status=500,
                )
            saved = joblib.load(path)
            model = FineTunedModel(model_id, saved["heads"])
            self.cache[model_id] = model
            while len(self.cache) > MODEL_CACHE_SIZE:
                self.cache.popitem(last=False)
            return model

    # --- jobs ------------------------------------------------------------------------

    def _save_job(self, job: dict) -> None:
        _write_json(self.jobs_dir / f"{job['id']}.json", job)

    def _event(self, job: dict, message: str, level: str = "info", data=None) -> None:
        with self.lock:
            event = {
                "object": "fine_tuning.job.event",
                "id": "ftevent-" + secrets.token_hex(12),
                "created_at": _now(),
                "level": level,
                "message": message,
                "type": "metrics" if data is not None else "message",
            }
            if data is not None:
                event["data"] = data
            self.events.setdefault(job["id"], []).append(event)
            _write_json(self.jobs_dir / f"{job['id']}.events.json", self.events[job["id"]])

    def _set_status(self, job: dict, status: str, **changes) -> bool:
        """Move job to status unless it was cancelled meanwhile; False when it was."""
        with self.lock:
            if job["status"] == "cancelled":
                return False
            job["status"] = status
            job.update(changes)
            if status in TERMINAL:
                job["finished_at"] = _now()
            self._save_job(job)
            return True

    def create_job(self, body: dict) -> dict:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise invalid("model: required, the model to fine-tune", param="model")
        if model != BASE_MODEL:
            if model in self.registry:
                raise invalid(
                    f"model: fine-tuning continues only from {BASE_MODEL}; fine-tune it on the "
                    "whole dataset instead of on top of a fine-tuned model",
                    param="model",
                )
            raise self.model_not_found(model)
        training_file = body.get("training_file")
        if not isinstance(training_file, str) or not training_file:
            raise invalid(
                "training_file: required, the id of an uploaded file", param="training_file"
            )
        if training_file not in self.files:
            raise invalid(
                f"training_file: no such file: {training_file}",
                param="training_file",
                code="file_not_found",
            )
        validation_file = body.get("validation_file")
        if validation_file is not None and (
            not isinstance(validation_file, str) or validation_file not in self.files
        ):
            raise invalid(
                f"validation_file: no such file: {validation_file}",
                param="validation_file",
                code="file_not_found",
            )
        suffix = body.get("suffix")
        if suffix is not None and (
            not isinstance(suffix, str)
            or not 1 <= len(suffix) <= 64
            or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in suffix)
        ):
            raise invalid(
                "suffix: 1 to 64 characters among letters, digits, '-', '_' and '.'",
                param="suffix",
            )
        seed = body.get("seed")
        if seed is None:
            seed = secrets.randbelow(2**31)
        elif not isinstance(seed, int) or isinstance(seed, bool) or not -(2**63) <= seed < 2**63:
            raise invalid("seed: expected a 64-bit integer", param="seed")
        method = self._method(body.get("method"), body.get("hyperparameters"))
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise invalid("metadata: up to 16 string keys with string values", param="metadata")
        job_id = "ftjob-" + secrets.token_hex(12)
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "model": model,
            "created_at": _now(),
            "finished_at": None,
            "status": "validating_files",
            "fine_tuned_model": None,
            "organization_id": "org-tokenworks",
            "result_files": [],
            "trained_tokens": None,
            "training_file": training_file,
            "validation_file": validation_file,
            "error": None,
            "method": method,
            "hyperparameters": method[method["type"]]["hyperparameters"],
            "seed": seed,
            "suffix": suffix,
            "user_provided_suffix": suffix,
            "estimated_finish": None,
            "integrations": [],
            "metadata": metadata,
            "_seq": time.time_ns(),
        }
        with self.lock:
            self.jobs[job_id] = job
            self._save_job(job)
            self.events[job_id] = []
        self._event(job, f"Validating training file: {training_file}")
        self._enqueue(job_id)
        return public(job)

    @staticmethod
    def _method(method, legacy_hyperparameters) -> dict:
        if method is None:
            method = {"type": "supervised"}
        if not isinstance(method, dict) or method.get("type") not in METHOD_TYPES:
            kind = method.get("type") if isinstance(method, dict) else method
            raise invalid(
                f"method.type: expected one of {', '.join(sorted(METHOD_TYPES))}, got {kind!r}",
                param="method.type",
            )
        kind = method["type"]
        details = method.get(kind) or {}
        if not isinstance(details, dict):
            raise invalid(f"method.{kind}: expected an object", param=f"method.{kind}")
        given = details.get("hyperparameters") or legacy_hyperparameters or {}
        if not isinstance(given, dict):
            raise invalid(
                f"method.{kind}.hyperparameters: expected an object",
                param=f"method.{kind}.hyperparameters",
            )
        names = ["n_epochs", "batch_size", "learning_rate_multiplier"]
        if kind == "dpo":
            names.append("beta")
        hyperparameters = {}
        for name in names:
            value = given.get(name, "auto")
            if value != "auto" and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise invalid(
                    f"method.{kind}.hyperparameters.{name}: expected 'auto' or a positive number",
                    param=f"method.{kind}.hyperparameters.{name}",
                )
            hyperparameters[name] = value
        return {"type": kind, kind: {"hyperparameters": hyperparameters}}

    def get_job(self, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(f"Could not find fine-tune job: {job_id}", param="fine_tuning_job_id")
        return job

    def job_view(self, job_id: str) -> dict:
        with self.lock:
            return public(self.get_job(job_id))

    def list_jobs(self, after: str | None, limit) -> dict:
        with self.lock:
            items = sorted(self.jobs.values(), key=lambda j: j["_seq"], reverse=True)
            return _page([public(j) for j in items], after, limit)

    def job_events(self, job_id: str, after: str | None, limit) -> dict:
        self.get_job(job_id)
        with self.lock:
            newest_first = list(reversed(self.events.get(job_id, [])))
        return _page(newest_first, after, limit)

    def cancel_job(self, job_id: str) -> dict:
        with self.lock:
            job = self.get_job(job_id)
            if job["status"] in TERMINAL:
                raise invalid(
                    f"Job {job_id} has already {job['status']} and cannot be cancelled",
                    param="fine_tuning_job_id",
                    code="job_not_cancellable",
                )
            self._set_status(job, "cancelled")
            self._event(job, "Job cancelled by the user")
            return public(job)

    # --- the trainer thread ----------------------------------------------------------

    def _work(self) -> None:
        while True:
            job_id = self.queue.get()
            if job_id is None or self.closed:
                return
            job = self.jobs.get(job_id)
            if job is None or job["status"] in TERMINAL:
                continue
            try:
                self._run(job)
            except Exception as exc:
                self._fail(job, "server_error", f"training crashed: {type(exc).__name__}: {exc}")

    def _fail(self, job: dict, code: str, message: str, param: str | None = None) -> None:
        error = {"code": code, "message": message, "param": param}
        if self._set_status(job, "failed", error=error):
            self._event(job, message, level="error")

    def _run(self, job: dict) -> None:
        kind = job["method"]["type"]
        if kind != "supervised":
            self._fail(
                job,
                "unsupported_method",
                f"The built-in model cannot fine-tune with method '{kind}': it is a text "
                "classifier (TF-IDF + logistic regression) with no notion of preferring one "
                "reply over another. Use method.type 'supervised' with chat examples whose "
                "assistant message is the answer.",
                param="method.type",
            )
            return
        files = [("training_file", job["training_file"])]
        if job["validation_file"]:
            files.append(("validation_file", job["validation_file"]))
        loaded = {}
        for param, file_id in files:
            try:
                examples = read_examples(self.file_path(file_id))
            except APIError:
                self._fail(job, f"invalid_{param}", f"{param} {file_id} no longer exists", param)
                return
            except DataFileError as exc:
                self._fail(job, f"invalid_{param}", f"{param} {file_id}: {exc}", param)
                return
            for number, example in enumerate(examples, start=1):
                if example.kind == "preference":
                    self._fail(
                        job,
                        f"invalid_{param}",
                        f"{param} {file_id}: example {number} is a preference (DPO) example; "
                        "a supervised job needs chat examples {'messages': [...]}",
                        param,
                    )
                    return
            loaded[param] = examples
        training = loaded["training_file"]
        if not self._set_status(job, "queued"):
            return
        self._event(job, "Files validated, moving job to queued state")
        if not self._set_status(job, "running"):
            return
        self._event(job, f"Fine-tuning job started: {len(training)} training examples")
        heads, notes = train_heads(training, job["seed"] % 2**32)
        for note in notes:
            self._event(job, note, level="warn")
        if not heads:
            self._fail(
                job,
                "invalid_training_file",
                f"training_file {job['training_file']}: nothing to learn; the built-in model "
                "needs at least two different labels (or ratings, or choices). " + " ".join(notes),
                "training_file",
            )
            return
        train_scores = evaluate(heads, training)
        valid_scores = evaluate(heads, loaded.get("validation_file", []))
        for head, score in train_scores.items():
            data = {
                "step": 1,
                "total_steps": 1,
                "head": head,
                "train_examples": score["examples"],
                "train_accuracy": round(score["accuracy"], 6),
            }
            if "loss" in score:
                data["train_loss"] = round(score["loss"], 6)
            message = f"{head}: training accuracy {score['accuracy']:.4f}"
            valid = valid_scores.get(head)
            if valid:
                data["valid_examples"] = valid["examples"]
                data["valid_accuracy"] = round(valid["accuracy"], 6)
                if "loss" in valid:
                    data["valid_loss"] = round(valid["loss"], 6)
                message += (
                    f", validation accuracy {valid['accuracy']:.4f} on {valid['examples']} examples"
                )
            self._event(job, message, data=data)
        trained_tokens = sum(e.tokens for e in training)
        model_id = f"ft:{BASE_MODEL}:{job['suffix'] or 'custom'}:{job['id'][6:14]}"
        path = self.models_dir / f"{job['id']}.joblib"
        joblib.dump({"format": 1, "model_id": model_id, "heads": heads}, path)
        with self.lock:
            if job["status"] == "cancelled":
                path.unlink(missing_ok=True)
                return
            self.registry[model_id] = {
                "job": job["id"],
                "file": path.name,
                "sha256": _sha256(path),
                "created": _now(),
                "heads": sorted(heads),
            }
            _write_json(self.models_dir / "registry.json", self.registry)
            self._event(job, f"New fine-tuned model created: {model_id}")
            self._set_status(
                job, "succeeded", fine_tuned_model=model_id, trained_tokens=trained_tokens
            )
            self._event(job, "The job has successfully completed")
