"""What every reported figure means: one text, shown in tooltips, exports and docs.

docs/MEASURES.md is written from the same definitions (a test keeps them in
step), so a number never means one thing on screen and another on paper.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    definition: str
    unit: str = ""


MEASURES = {
    m.key: m
    for m in (
        Measure(
            "tokens_total",
            _("Tokens processed"),
            _(
                "Input plus output tokens of every unit of work done in the region in the "
                "period: human annotations and reviews (the item's tokens plus the answer's) "
                "and machine inference and fine-tuning (the model's prompt and completion, or "
                "the trained tokens). Rejected work is taken back out."
            ),
            _("tokens"),
        ),
        Measure(
            "tokens_human",
            _("Human tokens"),
            _("Tokens of human annotations and reviews."),
            _("tokens"),
        ),
        Measure(
            "tokens_machine",
            _("Machine tokens"),
            _("Tokens of model inference calls and fine-tuning runs."),
            _("tokens"),
        ),
        Measure(
            "human_share",
            _("Human share of tokens"),
            _("Human tokens divided by all tokens processed."),
            "%",
        ),
        Measure(
            "revenue",
            _("Revenue"),
            _(
                "What clients are charged for the work, in yuan: the project's price per "
                "1,000 tokens for human work (gold checks are not charged), the backend's "
                "price for machine work."
            ),
            "CNY",
        ),
        Measure(
            "cost",
            _("Cost"),
            _(
                "What the work costs, in yuan: the skill tier's pay to the annotator for "
                "human work, the backend's price or energy cost for machine work."
            ),
            "CNY",
        ),
        Measure("margin", _("Margin"), _("Revenue minus cost."), "CNY"),
        Measure("margin_rate", _("Margin rate"), _("Margin divided by revenue."), "%"),
        Measure(
            "revenue_per_1k",
            _("Revenue per 1,000 tokens"),
            _(
                "Revenue divided by tokens, times 1,000: the price the region's work "
                "actually earns. By tier, only that tier's work is counted; 'machine' is "
                "untiered model inference."
            ),
            _("CNY per 1,000 tokens"),
        ),
        Measure(
            "value_chain_index",
            _("Value-chain index"),
            _(
                "Share of tiered revenue earned at skill tier T3 (review and quality "
                "assurance) and above: revenue of T3, T4 and T5 work divided by revenue of "
                "all T1–T5 work. Untiered model inference is left out of both."
            ),
            "%",
        ),
        Measure(
            "value_chain_trend",
            _("Value-chain index trend"),
            _(
                "The value-chain index of the period's last month with tiered revenue minus "
                "that of its first such month, in percentage points: positive when the "
                "region climbs the value chain, negative when it slides."
            ),
            _("percentage points"),
        ),
        Measure(
            "trap_streak",
            _("Months under the threshold"),
            _(
                "Consecutive months, ending with the period's last month, in which the "
                "value-chain index stayed under the low-end-trap threshold. A month without "
                "tiered revenue ends the streak, and it is counted back no further than the "
                "period's first month (or the configured number of months, if that reaches "
                "further). The warning shows when the streak reaches that number of months."
            ),
            _("months"),
        ),
        Measure(
            "active_annotators",
            _("Active annotators"),
            _(
                "People with at least one accepted unit of human work (annotation or "
                "review) in the region in the month; for a period, the monthly average."
            ),
            _("people"),
        ),
        Measure(
            "median_earnings",
            _("Median monthly earnings"),
            _(
                "The median, over active annotators, of what each earned in the region in "
                "the month (the tiers' pay for their accepted work); for a period, the "
                "median of the monthly medians."
            ),
            "CNY",
        ),
        Measure(
            "promotions",
            _("Promotions"),
            _("Tier promotions of annotators working in the region, by the daily review."),
            _("people"),
        ),
        Measure(
            "demotions",
            _("Demotions"),
            _("Tier demotions of annotators working in the region, by the daily review."),
            _("people"),
        ),
        Measure(
            "gpu_hours",
            _("GPU-hours"),
            _(
                "GPU time machine work held: each inference call's wall time times the "
                "backend's GPUs, shared among the calls it serves at once (its concurrency); "
                "each fine-tuning run's duration times its GPUs."
            ),
            _("hours"),
        ),
        Measure(
            "tokens_per_gpu_hour",
            _("Tokens per GPU-hour"),
            _("Machine tokens divided by GPU-hours."),
            _("tokens"),
        ),
        Measure(
            "cost_per_million",
            _("Cost per million tokens"),
            _("Machine cost divided by machine tokens, times 1,000,000."),
            "CNY",
        ),
    )
}


def definitions() -> dict[str, dict]:
    return {
        key: {"label": str(m.label), "definition": str(m.definition), "unit": str(m.unit)}
        for key, m in MEASURES.items()
    }


def measures_markdown() -> str:
    """docs/MEASURES.md, from the definitions the dashboard shows (English)."""
    lines = [
        "# Measures in the regional KPI reports",
        "",
        "Generated by `manage.py measures_doc > docs/MEASURES.md` from",
        "`platform/kpireports/definitions.py`, the same text the dashboard shows in its",
        "tooltips and the XLSX/PDF files print; a test fails when the two differ.",
        "",
        "Every measure is read from the value-chain rollups (never from the ledger",
        "directly) for a region together with the regions under it (a province",
        "includes its cities) and a period of whole months in the platform's time zone.",
        "",
        "| Measure | Unit | Definition |",
        "|---|---|---|",
    ]
    lines += [
        f"| {m.label} | {m.unit or '—'} | {m.definition} |".replace("\n", " ")
        for m in MEASURES.values()
    ]
    return "\n".join(lines) + "\n"
