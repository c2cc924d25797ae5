# Generated from the server's OpenAPI schema by client/scripts/generate_models.py:
# do not edit; run the script after changing a serializer.
"""What the API answers, as typed dictionaries (the JSON the client returns)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "Annotation",
    "AnnotatorRecord",
    "ApiToken",
    "ApiTokenCreated",
    "Backend",
    "DatasetVersion",
    "ExportJob",
    "FineTuneRun",
    "ImportJob",
    "Item",
    "ItemResult",
    "Lease",
    "Me",
    "MeMembership",
    "MeToken",
    "Prediction",
    "PrelabelRun",
    "Project",
    "ProjectQuality",
    "ProjectStatement",
    "PromptTemplate",
    "Region",
    "ReportRegion",
    "ResultBrief",
    "Review",
    "ReviewItem",
    "ReviewLease",
    "StatementLine",
    "StatementTotals",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpointCreated",
    "Workforce",
    "WorkspaceProject",
]


class Annotation(TypedDict):
    id: int
    item: int
    assignment: int
    answer: Any
    status: NotRequired[str]
    time_spent_ms: NotRequired[int]
    item_tokens: NotRequired[int]
    answer_tokens: NotRequired[int]
    created_at: str


class AnnotatorRecord(TypedDict):
    id: int
    username: str
    tasks: int
    gold: int
    gold_correct: int
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    evidence: float
    quarantined: bool
    quarantined_at: str | None
    reason: str


class ApiToken(TypedDict):
    id: int
    organization: int
    name: str
    prefix: str
    roles: list[str]
    created_by: str
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    is_active: bool


class ApiTokenCreated(TypedDict):
    id: int
    organization: int
    name: str
    prefix: str
    roles: list[str]
    created_by: str
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    is_active: bool
    token: str


class Backend(TypedDict):
    id: int
    organization: NotRequired[int | None]
    name: str
    kind: NotRequired[str]
    base_url: str | None
    has_api_key: bool
    models: NotRequired[list[str]]
    region: NotRequired[str | None]
    gpu_kind: NotRequired[str]
    gpu_count: NotRequired[int]
    price_input_per_million: NotRequired[str]
    price_output_per_million: NotRequired[str]
    price_training_per_million: NotRequired[str]
    electricity_price_kwh: NotRequired[str | None]
    power_draw_kw: NotRequired[str | None]
    max_concurrency: NotRequired[int]
    rpm_limit: NotRequired[int | None]
    tpm_limit: NotRequired[int | None]
    is_active: NotRequired[bool]
    health: str
    circuit: str
    last_latency_ms: float | None
    last_checked_at: str | None
    created_at: str


class DatasetVersion(TypedDict):
    id: int
    project: int
    version: int
    format: str
    seed: int
    validation_ratio: str
    train_count: int
    validation_count: int
    train_tokens: int
    content_hash: str
    created_at: str


class ExportJob(TypedDict):
    id: str
    project: int
    format: str
    approved_only: NotRequired[bool]
    status: str
    row_count: int
    error: str
    download_url: str | None
    created_at: str
    finished_at: str | None


class FineTuneRun(TypedDict):
    id: int
    project: int
    dataset: int
    backend: int | None
    base_model: str
    method: str
    status: str
    remote_job: str
    fine_tuned_model: str
    trained_tokens: int
    cost: str
    events: Any
    evaluation: Any
    error: str
    created_at: str
    finished_at: str | None


class ImportJob(TypedDict):
    id: str
    project: int
    filename: str
    file_size: int
    format: str
    encoding: str
    on_conflict: str
    on_error: str
    status: str
    progress: float
    rows_read: int
    rows_valid: int
    rows_invalid: int
    created_count: int
    updated_count: int
    skipped_count: int
    duplicate_count: int
    errors: Any
    error: str
    created_at: str
    started_at: str | None
    finished_at: str | None


class Item(TypedDict):
    id: int
    project: int
    external_id: str
    data: Any
    gold_answer: NotRequired[Any]
    is_gold: NotRequired[bool]
    metadata: NotRequired[Any]
    priority: NotRequired[float]
    status: NotRequired[str]
    target_annotations: NotRequired[int | None]
    annotation_count: NotRequired[int]
    token_count: NotRequired[int]
    result: ResultBrief | None
    created_at: str
    updated_at: str


class ItemResult(TypedDict):
    id: int
    item: int
    external_id: str
    project: int
    answer: Any
    confidence: float
    method: str
    agreement: NotRequired[float | None]
    approved: NotRequired[bool]
    provenance: NotRequired[Any]
    updated_at: str


class Lease(TypedDict):
    id: int
    project: int
    status: NotRequired[str]
    leased_at: str
    expires_at: str
    item: dict[str, Any]


class Me(TypedDict):
    """The caller: a person signed in, or an API token acting for its organization."""

    principal: str
    id: int | None
    username: str | None
    display_name: str | None
    email: str | None
    memberships: list[MeMembership]
    token: MeToken | None


class MeMembership(TypedDict):
    organization: int
    organization_name: str
    role: str


class MeToken(TypedDict):
    id: int
    name: str
    prefix: str
    organization: int
    organization_name: str
    roles: list[str]
    expires_at: str | None
    created_by: str


class Prediction(TypedDict):
    id: int
    run: int
    item: int
    answer: Any
    confidence: float
    model: str
    backend: NotRequired[int | None]
    prompt_version: int
    prompt_tokens: NotRequired[int]
    completion_tokens: NotRequired[int]
    cost: NotRequired[str]
    created_at: str


class PrelabelRun(TypedDict):
    id: int
    project: int
    prompt: int
    model: str
    policy: str
    region: int | None
    backend: int | None
    item_filter: Any
    purpose: str
    status: str
    total_items: int
    done_items: int
    failed_items: int
    progress: float
    prompt_tokens: int
    completion_tokens: int
    cost: str
    error: str
    failures: Any
    retry_policy: Any
    created_at: str
    started_at: str | None
    finished_at: str | None


class Project(TypedDict):
    id: int
    organization: NotRequired[int]
    workforce: NotRequired[int | None]
    name: str
    description: NotRequired[str]
    kind: NotRequired[str]
    task_type: str
    label_schema: NotRequired[Any]
    instructions: NotRequired[str]
    required_tier: NotRequired[int]
    decision: NotRequired[str]
    overlap: NotRequired[int]
    target_confidence: NotRequired[str]
    max_annotations: NotRequired[int]
    quarantine_below: NotRequired[str]
    suggestion_prefill_floor: NotRequired[str]
    model_votes: NotRequired[bool]
    retrain_every: NotRequired[int]
    review_rate: NotRequired[str]
    gold_ratio: NotRequired[str]
    agreement_threshold: NotRequired[str]
    price_per_1k_tokens: NotRequired[str]
    lease_seconds: NotRequired[int]
    status: NotRequired[str]
    created_at: str
    updated_at: str


class ProjectQuality(TypedDict):
    project: int
    decision: str
    target_confidence: str
    max_annotations: int
    overlap: int
    quarantine_below: str
    items: _QualityItems
    human_actions: _QualityActions
    decided_by_annotations: dict[str, Any]
    charges: _QualityCharges
    accuracy: _QualityAccuracy
    model: _QualityModel
    annotators: _QualityAnnotators
    estimated_at: str | None


class ProjectStatement(TypedDict):
    project: int
    month: str
    currency: str
    time_zone: str
    period_start: str
    period_end: str
    lines: list[StatementLine]
    totals: StatementTotals


class PromptTemplate(TypedDict):
    id: int
    project: int
    version: int
    system: NotRequired[str]
    user: NotRequired[str]
    created_at: str


class Region(TypedDict):
    id: int
    code: str
    level: str
    parent: NotRequired[int | None]
    parent_code: str | None
    name_zh: str
    name_en: str


class ReportRegion(TypedDict):
    id: int
    code: str
    level: str
    name_en: str
    name_zh: str
    parent: NotRequired[int | None]


class ResultBrief(TypedDict):
    answer: Any
    confidence: float
    method: str
    agreement: NotRequired[float | None]
    approved: NotRequired[bool]


class Review(TypedDict):
    id: int
    item: int
    verdict: str
    annotation: NotRequired[int | None]
    reason: NotRequired[str]
    corrected_answer: NotRequired[Any]
    created_at: str


class ReviewItem(TypedDict):
    id: int
    data: Any
    status: NotRequired[str]
    result: ResultBrief | None
    annotations: list[dict[str, Any]]
    suggestion: dict[str, Any] | None


class ReviewLease(TypedDict):
    id: int
    project: int
    status: NotRequired[str]
    leased_at: str
    expires_at: str
    seconds_left: int
    item: ReviewItem
    waiting: int | None


class StatementLine(TypedDict):
    kind: str
    skill_tier: int | None
    entries: int
    tokens_input: int
    tokens_output: int
    revenue: str


class StatementTotals(TypedDict):
    entries: int
    tokens_input: int
    tokens_output: int
    revenue: str


class WebhookDelivery(TypedDict):
    id: str
    endpoint: int
    event: str
    payload: Any
    status: str
    attempts: int
    attempt_limit: int
    last_status_code: int | None
    last_error: str
    next_attempt_at: str | None
    delivered_at: str | None
    created_at: str


class WebhookEndpoint(TypedDict):
    id: int
    organization: int
    url: str
    events: NotRequired[list[str]]
    is_active: NotRequired[bool]
    created_at: str


class WebhookEndpointCreated(TypedDict):
    id: int
    organization: int
    url: str
    events: NotRequired[list[str]]
    is_active: NotRequired[bool]
    created_at: str
    secret: str


class Workforce(TypedDict):
    id: int
    name: str
    region: Region


class WorkspaceProject(TypedDict):
    id: int
    name: str
    task_type: str
    label_schema: NotRequired[Any]
    instructions: NotRequired[str]
    required_tier: NotRequired[int]
    overlap: NotRequired[int]
    lease_seconds: NotRequired[int]


class _GoldCheck(TypedDict):
    items: int
    right: int
    accuracy: float | None
    low: float | None
    high: float | None
    sent_to_review: int


class _QualityAccuracy(TypedDict):
    expected: float | None
    gold_check: _GoldCheck
    reviewed_items: int


class _QualityActions(TypedDict):
    annotations: int
    gold_annotations: int
    reviews: int
    rejected_annotations: int
    per_item: float | None
    per_decided_item: float | None


class _QualityAnnotators(TypedDict):
    estimated: int
    quarantined: int
    all_quarantined: bool
    people: NotRequired[list[AnnotatorRecord]]


class _QualityCharges(TypedDict):
    currency: str
    total: str
    by_kind: dict[str, Any]
    per_decided_item: str | None


class _QualityItems(TypedDict):
    total: int
    decided: int
    in_review: int
    open: int


class _QualityModel(TypedDict):
    name: str | None
    votes: bool
    accuracy: float | None
    checked: int
