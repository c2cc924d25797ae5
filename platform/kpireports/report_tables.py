"""A report as tables of typed cells: what the dashboard shows and every file holds.

The dashboard's tables, the CSV, the XLSX and the PDF are all written from
`report_sections`, and every cell is formatted by `Cell.display`, so a figure
on screen and the same figure on paper are one value, formatted once.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from .definitions import MEASURES


@dataclass(frozen=True)
class Cell:
    value: object
    kind: str = "text"  # text | int | money | rate | points | per1k | decimal
    hint: str = ""  # the measure's definition, shown as a tooltip

    def display(self, *, grouping: bool = True) -> str:
        value = self.value
        if value is None:
            return "—"
        if self.kind == "int":
            return f"{value:,}" if grouping else str(value)
        if self.kind == "money":
            return f"¥{value:,.2f}" if grouping else f"{value:.2f}"
        if self.kind == "rate":
            return f"{Decimal(value) * 100:.2f}%"
        if self.kind == "points":
            return _("%(points)s pt") % {"points": f"{Decimal(value) * 100:+.2f}"}
        if self.kind == "per1k":
            return f"¥{value:.4f}" if grouping else f"{value:.4f}"
        if self.kind == "decimal":
            return f"{value:,.2f}" if grouping else f"{value:.2f}"
        if isinstance(value, bool):
            return _("yes") if value else _("no")
        return str(value)

    def number(self):
        """The cell as a spreadsheet number (None for text): rates stay fractions."""
        if self.value is None or self.kind == "text" or isinstance(self.value, bool):
            return None
        return self.value


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]

    @property
    def hints(self) -> list[str]:
        """Each column's definition, where the column is a defined measure."""
        by_label = {str(m.label): str(m.definition) for m in MEASURES.values()}
        return [by_label.get(column, "") for column in self.columns]

    @property
    def header(self) -> list[tuple[str, str]]:
        return list(zip(self.columns, self.hints, strict=True))


SUMMARY_KINDS = {
    "tokens_total": "int",
    "tokens_human": "int",
    "tokens_machine": "int",
    "human_share": "rate",
    "revenue": "money",
    "cost": "money",
    "margin": "money",
    "margin_rate": "rate",
    "revenue_per_1k": "per1k",
    "value_chain_index": "rate",
    "value_chain_trend": "points",
}
RATE_KEYS = {
    "human_share",
    "margin_rate",
    "value_chain_index",
    "value_chain_trend",
    "revenue_per_1k",
}


def _name(item: dict) -> str:
    return item["name_zh"] if (get_language() or "").startswith("zh") else item["name_en"]


def tier_label(level: int) -> str:
    return f"T{level}" if level else _("Machine (untiered)")


def report_sections(report: dict) -> list[Section]:
    sections = []
    compare = report["compare_summary"]
    summary_rows = []
    for key, kind in SUMMARY_KINDS.items():
        measure = MEASURES[key]
        row = [
            Cell(str(measure.label), hint=str(measure.definition)),
            Cell(report["summary"][key], kind),
        ]
        if compare:
            change = report["change"][key]
            if key in RATE_KEYS and key != "revenue_per_1k":
                change_cell = Cell(change, "points")
            elif key == "revenue_per_1k":
                change_cell = Cell(change, "per1k")
            else:
                change_cell = Cell(change, "rate")
            row += [Cell(compare[key], kind), change_cell]
        summary_rows.append(row)
    summary_columns = [_("Measure"), _("Value")]
    if compare:
        summary_columns += [_("Comparison"), _("Change")]
    sections.append(Section("summary", _("Summary"), summary_columns, summary_rows))

    tier_columns = [
        _("Tier"),
        str(MEASURES["tokens_total"].label),
        str(MEASURES["revenue"].label),
        str(MEASURES["revenue_per_1k"].label),
    ]
    if compare:
        tier_columns.append(_("Comparison: revenue per 1,000 tokens"))
    tier_rows = []
    for row in report["by_tier"]:
        cells = [
            Cell(tier_label(row["tier"])),
            Cell(row["tokens"], "int"),
            Cell(row["revenue"], "money"),
            Cell(row["revenue_per_1k"], "per1k"),
        ]
        if compare:
            cells.append(Cell(row["compare_revenue_per_1k"], "per1k"))
        tier_rows.append(cells)
    sections.append(
        Section("by_tier", _("Revenue per token by skill tier"), tier_columns, tier_rows)
    )

    sections.append(
        Section(
            "monthly",
            _("Month by month"),
            [
                _("Month"),
                _("Human tokens"),
                _("Machine tokens"),
                _("Revenue"),
                _("Value-chain index"),
            ],
            [
                [
                    Cell(f"{m['month']:%Y-%m}"),
                    Cell(m["tokens_human"], "int"),
                    Cell(m["tokens_machine"], "int"),
                    Cell(m["revenue"], "money"),
                    Cell(m["value_chain_index"], "rate"),
                ]
                for m in report["monthly"]
            ],
        )
    )
    if report["league"]:
        sections.append(
            Section(
                "league",
                _("League table"),
                [
                    _("Region"),
                    str(MEASURES["tokens_total"].label),
                    str(MEASURES["revenue"].label),
                    str(MEASURES["revenue_per_1k"].label),
                    str(MEASURES["value_chain_index"].label),
                    _("Low-end-trap warning"),
                ],
                [
                    [
                        Cell(_name(r)),
                        Cell(r["tokens_total"], "int"),
                        Cell(r["revenue"], "money"),
                        Cell(r["revenue_per_1k"], "per1k"),
                        Cell(r["value_chain_index"], "rate"),
                        Cell(r["trap_warning"]),
                    ]
                    for r in report["league"]
                ],
            )
        )
    employment = report["employment"]
    sections.append(
        Section(
            "employment",
            _("Employment"),
            [
                _("Month"),
                str(MEASURES["active_annotators"].label),
                str(MEASURES["median_earnings"].label),
                str(MEASURES["promotions"].label),
                str(MEASURES["demotions"].label),
            ],
            [
                [
                    Cell(f"{m['month']:%Y-%m}"),
                    Cell(m["active_annotators"], "int"),
                    Cell(m["median_earnings"], "money"),
                    Cell(m["promotions"], "int"),
                    Cell(m["demotions"], "int"),
                ]
                for m in employment["monthly"]
            ]
            + [
                [
                    Cell(_("Period")),
                    Cell(employment["active_annotators"], "int"),
                    Cell(employment["median_earnings"], "money"),
                    Cell(employment["promotions"], "int"),
                    Cell(employment["demotions"], "int"),
                ]
            ],
        )
    )
    sections.append(
        Section(
            "compute",
            _("Compute"),
            [
                _("Backend"),
                _("Region"),
                str(MEASURES["tokens_machine"].label),
                str(MEASURES["gpu_hours"].label),
                str(MEASURES["tokens_per_gpu_hour"].label),
                str(MEASURES["cost"].label),
                str(MEASURES["cost_per_million"].label),
            ],
            [
                [
                    Cell(r["backend"]),
                    Cell(
                        r["region_zh"]
                        if (get_language() or "").startswith("zh")
                        else r["region_en"]
                    ),
                    Cell(r["tokens"], "int"),
                    Cell(r["gpu_hours"], "decimal"),
                    Cell(r["tokens_per_gpu_hour"], "int"),
                    Cell(r["cost"], "money"),
                    Cell(r["cost_per_million"], "per1k"),
                ]
                for r in report["compute"]
            ],
        )
    )
    return sections


def report_title(report: dict) -> str:
    return _("%(region)s: KPI report %(start)s – %(end)s") % {
        "region": _name(report["region"]),
        "start": f"{report['period']['start']:%Y-%m}",
        "end": f"{report['period']['end']:%Y-%m}",
    }


def trap_sentence(report: dict) -> str:
    trap = report["trap"]
    values = {
        "streak": trap["streak"],
        "threshold": f"{Decimal(trap['threshold']) * 100:.0f}%",
        "required": trap["months_required"],
    }
    if trap["warning"]:
        return (
            _(
                "Low-end-trap warning: the value-chain index has stayed under %(threshold)s "
                "for %(streak)s consecutive months (warning at %(required)s)."
            )
            % values
        )
    if trap["streak"]:
        # Under the threshold now, but not for long enough: say so, or an index
        # under the line beside "no warning" reads as a contradiction.
        return (
            _(
                "No low-end-trap warning yet: the value-chain index has been under "
                "%(threshold)s for %(streak)s consecutive months; the warning comes after "
                "%(required)s in a row."
            )
            % values
        )
    return (
        _(
            "No low-end-trap warning: the value-chain index was at or above %(threshold)s "
            "in the last month (a warning needs %(required)s months in a row under it)."
        )
        % values
    )


def compare_note(report: dict) -> str:
    """Why a change reads "—", when the report is compared with another period."""
    period = report.get("compare_period")
    if not period:
        return ""
    values = {"start": f"{period['start']:%Y-%m}", "end": f"{period['end']:%Y-%m}"}
    compared = report.get("compare_summary") or {}
    if not compared.get("tokens_total"):
        return (
            _(
                "Compared with %(start)s to %(end)s: no work was recorded in this region "
                "then, so there is nothing to compare with and every change shows “—”."
            )
            % values
        )
    return (
        _(
            "Compared with %(start)s to %(end)s. A change shows “—” where that period's "
            "figure was zero or missing: a percentage of nothing cannot be made."
        )
        % values
    )
