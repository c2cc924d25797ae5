"""An annotator's quality record: what the tier review judges, and who supplies it.

The record is measured from annotations, but annotation sits above valuechain
in the dependency order, so valuechain may not import it. Instead valuechain
owns the shape of the record and a registration point; annotation registers
its provider when the app is ready (AnnotationConfig.ready()).
"""

from collections.abc import Callable
from decimal import Decimal
from typing import TypedDict

from django.core.exceptions import ImproperlyConfigured

MIN_EVIDENCE = 20  # gold checks or reviews before a bar is judged


class QualityRecord(TypedDict):
    """The part of an annotator's record the tier bars read (a provider may add more)."""

    gold_accuracy: float | None
    gold_checked: int
    review_acceptance: float | None
    reviewed: int
    tokens: int


# Called as provider(annotator=user).
QualityProvider = Callable[..., QualityRecord]

_provider: QualityProvider | None = None


def quality_provider_register(provider: QualityProvider) -> None:
    """Install the function that measures an annotator's record; the last one wins."""
    global _provider
    _provider = provider


def quality_record(*, annotator) -> QualityRecord:
    if _provider is None:
        raise ImproperlyConfigured(
            "No quality provider is registered; the annotation app registers one "
            "in AnnotationConfig.ready()."
        )
    return _provider(annotator=annotator)


def tier_meets(tier, record: QualityRecord) -> tuple[bool, list[str]]:
    """Whether a quality record clears a tier's bars, and which ones it misses."""
    misses = []
    for name, bar, value, evidence in (
        ("gold accuracy", tier.min_gold_accuracy, record["gold_accuracy"], record["gold_checked"]),
        (
            "review acceptance",
            tier.min_review_acceptance,
            record["review_acceptance"],
            record["reviewed"],
        ),
    ):
        if bar > 0 and (value is None or evidence < MIN_EVIDENCE or Decimal(str(value)) < bar):
            shown = "no evidence" if value is None or evidence < MIN_EVIDENCE else f"{value:.3f}"
            misses.append(f"{name} {shown} < {bar}")
    if record["tokens"] < tier.min_volume_tokens:
        misses.append(f"volume {record['tokens']:,} < {tier.min_volume_tokens:,} tokens")
    return not misses, misses
