"""Prometheus figures of the annotators' work: leases taken, answers submitted.

Labelled by task type only (a handful), never by project or person, so the
series stay few however many projects run; the hot path pays one counter
increment per call.
"""

from prometheus_client import Counter

LEASES = Counter(
    "tokenworks_task_leases",
    "Task lease requests, by result: new (an item was leased), held (an active "
    "lease came back), none (nothing left for the annotator)",
    ["task_type", "result"],
)
SUBMITS = Counter(
    "tokenworks_submits",
    "Answers submitted, by result: accepted, or repeated (a retried submit)",
    ["task_type", "result"],
)
TOKENS = Counter(
    "tokenworks_annotated_tokens",
    "Tokens of human work submitted: the item read (input) and the answer written (output)",
    ["task_type", "direction"],
)
