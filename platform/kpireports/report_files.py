"""The dashboard's report as CSV, XLSX and PDF, written from the same sections."""

import csv
import io

from django.utils.translation import gettext as _

from .report_tables import Section, report_sections, report_title, trap_sentence

NUMBER_FORMATS = {
    "int": "#,##0",
    "money": "#,##0.00",
    "decimal": "#,##0.00",
    "per1k": "0.0000",
    "rate": "0.00%",
    "points": "+0.00%;-0.00%",
}


def report_csv(report: dict) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([report_title(report)])
    writer.writerow([trap_sentence(report)])
    for section in report_sections(report):
        writer.writerow([])
        writer.writerow([section.title])
        writer.writerow(section.columns)
        for row in section.rows:
            writer.writerow([cell.display(grouping=False) for cell in row])
    # A BOM, so spreadsheet programs open the Chinese text as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def report_xlsx(report: dict) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    workbook.remove(workbook.active)
    for section in report_sections(report):
        sheet = workbook.create_sheet(title=section.title[:31])
        sheet.append([report_title(report)])
        sheet["A1"].font = Font(bold=True)
        sheet.append(section.columns)
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        for row in section.rows:
            sheet.append([c.number() if c.number() is not None else c.display() for c in row])
            for target, source in zip(sheet[sheet.max_row], row, strict=True):
                if source.number() is not None:
                    target.number_format = NUMBER_FORMATS.get(source.kind, "General")
        for column in sheet.columns:
            width = max(len(str(c.value or "")) for c in column[1:]) if len(column) > 1 else 10
            sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 10), 48)
    sheet = workbook.create_sheet(title=_("Definitions")[:31])
    sheet.append([_("Measure"), _("Definition")])
    for item in report["definitions"].values():
        sheet.append([item["label"], item["definition"]])
    sheet.column_dimensions["B"].width = 100
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _pdf_font(text: str) -> str:
    # Latin text in Helvetica (extractable, searchable); Chinese in the
    # built-in CID font, which needs no font file on the server.
    return "Helvetica" if text.isascii() else "STSong-Light"


def report_pdf(report: dict) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))

    def paragraph(text: str, size: float, bold: bool = False) -> Paragraph:
        font = _pdf_font(text)
        if bold and font == "Helvetica":
            font = "Helvetica-Bold"
        style = ParagraphStyle("cell", fontName=font, fontSize=size, leading=size * 1.25)
        return Paragraph(_escape(text), style)

    def table(section: Section) -> Table:
        data = [[paragraph(c, 7.5, bold=True) for c in section.columns]]
        data += [[paragraph(cell.display(), 7.5) for cell in row] for row in section.rows]
        result = Table(data, repeatRows=1)
        result.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f7")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return result

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=report_title(report),
        author="Tokenworks",
    )
    story = [paragraph(report_title(report), 14, bold=True), Spacer(1, 3 * mm)]
    story += [paragraph(trap_sentence(report), 9), Spacer(1, 4 * mm)]
    for section in report_sections(report):
        story += [paragraph(section.title, 11, bold=True), Spacer(1, 2 * mm), table(section)]
        story.append(Spacer(1, 5 * mm))
    story.append(paragraph(_("Definitions"), 11, bold=True))
    for item in report["definitions"].values():
        story.append(paragraph(f"{item['label']}: {item['definition']}", 7))
    document.build(story)
    return buffer.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


REPORT_FILES = {
    "csv": ("text/csv; charset=utf-8", report_csv),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", report_xlsx),
    "pdf": ("application/pdf", report_pdf),
}
