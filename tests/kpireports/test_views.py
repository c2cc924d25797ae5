"""The dashboard, and its three files holding the figures it shows."""

import csv
import io
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

AUTUMN = "start=2026-09&end=2026-10&compare=previous"


class _Tables(HTMLParser):
    """Each report table's body cells, as text, by its data-section."""

    def __init__(self):
        super().__init__()
        self.tables, self._section, self._row, self._cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-section" in attrs:
            self._section = attrs["data-section"]
            self.tables[self._section] = []
        elif tag == "tr" and self._section:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[self._section].append(self._row)
            self._row = None
        elif tag == "table":
            self._section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _screen(client, code="520000"):
    response = client.get(f"/reports/{code}/?{AUTUMN}")
    assert response.status_code == 200
    parser = _Tables()
    parser.feed(response.content.decode())
    return parser.tables


def _plain(text: str) -> str:
    """A screen figure without its grouping and currency sign, as CSV writes it."""
    return text.replace(",", "").replace("¥", "")


@pytest.fixture
def official(history):
    client = Client()
    client.force_login(history["province_official"])
    return client


def test_the_dashboard_shows_the_provinces_figures_and_definitions(official):
    response = official.get(f"/reports/520000/?{AUTUMN}")
    page = response.content.decode()
    assert response.status_code == 200
    assert "14,000" in page and "¥8.81" in page and "81.82%" in page
    assert 'id="chart-volume"' in page and "vendor/echarts/echarts.min.js" in page
    assert "Share of tiered revenue earned at skill tier T3" in page  # a tooltip's definition
    assert "Zhengzhou" not in page
    assert 'id="report-fresh"' in page and "Figures count all work recorded up to" in page


def test_csv_holds_every_figure_on_screen(official):
    tables = _screen(official)
    body = official.get(f"/reports/520000/report.csv?{AUTUMN}")
    assert body["Content-Type"].startswith("text/csv")
    rows = [
        [_plain(c) for c in row]
        for row in csv.reader(io.StringIO(body.content.decode("utf-8-sig")))
    ]
    for section, screen_rows in tables.items():
        for screen_row in screen_rows:
            assert [_plain(c) for c in screen_row] in rows, (section, screen_row)


def test_xlsx_holds_every_figure_on_screen(official):
    from openpyxl import load_workbook

    tables = _screen(official)
    body = official.get(f"/reports/520000/report.xlsx?{AUTUMN}")
    workbook = load_workbook(io.BytesIO(body.content))
    sheets = workbook.worksheets
    for (section, screen_rows), sheet in zip(tables.items(), sheets, strict=False):
        sheet_rows = [list(r) for r in sheet.iter_rows(min_row=3, values_only=True)]
        assert len(sheet_rows) == len(screen_rows), section
        for screen_row, sheet_row in zip(screen_rows, sheet_rows, strict=True):
            for shown, stored in zip(screen_row, sheet_row, strict=True):
                assert _same(shown, stored), (section, shown, stored)


def _same(shown: str, stored) -> bool:
    if isinstance(stored, str):
        return shown == stored
    if stored is None:
        return shown == "—"
    value = Decimal(str(stored))
    if shown.endswith(" pt"):
        return Decimal(shown[:-3].replace("+", "")) == (value * 100).quantize(Decimal("0.01"))
    if shown.endswith("%"):
        return Decimal(shown[:-1]) == (value * 100).quantize(Decimal("0.01"))
    return Decimal(_plain(shown)) == value


def test_pdf_holds_every_figure_on_screen(official):
    from pypdf import PdfReader

    tables = _screen(official)
    body = official.get(f"/reports/520000/report.pdf?{AUTUMN}")
    assert body["Content-Type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(body.content)).pages)
    squashed = text.replace(" ", "").replace("\n", "")
    for screen_rows in tables.values():
        for row in screen_rows:
            for cell in row:
                if cell.isascii():
                    assert cell.replace(" ", "") in squashed, cell


def test_the_city_official_is_kept_to_the_city(history):
    client = Client()
    client.force_login(history["city_official"])
    assert client.get("/reports/").url.startswith("/reports/520100/")
    assert client.get(f"/reports/520100/?{AUTUMN}").status_code == 200
    assert client.get(f"/reports/520000/?{AUTUMN}").status_code == 404
    assert client.get(f"/reports/520300/report.csv?{AUTUMN}").status_code == 404


def test_people_without_an_office_are_refused(history, django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("nobody"))
    assert client.get("/reports/").status_code == 403
    assert Client().get("/reports/").status_code == 302  # to the login page


def test_a_malformed_month_is_explained_on_the_page_and_in_files(official):
    response = official.get("/reports/520000/?start=2026-13")
    assert response.status_code == 400
    assert "Expected a month as YYYY-MM" in response.content.decode()
    export = official.get("/reports/520000/report.pdf?start=2026-13")
    assert export.status_code == 400 and "start" in export.content.decode()
    assert official.get("/reports/520000/report.doc").status_code == 404


def test_the_picker_keeps_the_choices_when_it_changes_region(official):
    response = official.get("/reports/", {"region": "520300", "start": "2026-09"})
    assert response.url == "/reports/520300/?start=2026-09"


def test_the_dashboard_explains_its_dashes_and_the_trap_streak(official):
    page = official.get(f"/reports/520000/?{AUTUMN}").content.decode()
    assert 'id="compare-note"' in page and "2026-07" in page
    assert "low-end-trap warning" in page and "months" in page
    assert 'id="chart-map"' in page


def test_a_city_office_gets_no_province_map(history):
    client = Client()
    client.force_login(history["city_official"])
    page = client.get(f"/reports/520100/?{AUTUMN}").content.decode()
    assert 'id="chart-map"' not in page and 'id="chart-vci"' in page
