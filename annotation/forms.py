"""Forms of the managers' project pages: input checks only; the rules live in services.

Shares (gold ratio, review rate, target confidence) are asked as percentages,
the way people say them, and handed to the services as the shares they store.
"""

import json
from decimal import Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _

from .models import ExportFormat, ImportJob, Project

HUNDRED = Decimal(100)

TIER_CHOICES = [(level, _("T%(level)s") % {"level": level}) for level in range(1, 6)]


def percent_field(label, *, minimum, maximum, help_text, required=True):
    return forms.DecimalField(
        label=label,
        min_value=minimum,
        max_value=maximum,
        max_digits=5,
        decimal_places=1,
        help_text=help_text,
        required=required,
    )


def service_errors_onto(
    form,
    error: ValidationError | PermissionDenied,
    *,
    default=NON_FIELD_ERRORS,
    denied=NON_FIELD_ERRORS,
    aliases: dict | None = None,
):
    """A service's error beside the field it names, or beside `default` naming its
    own field (a path inside the label schema, say); a refusal beside `denied`.
    aliases maps a service's argument to the form field that asks for it."""
    if isinstance(error, PermissionDenied):
        form.add_error(denied, str(error))
        return
    if not hasattr(error, "error_dict"):
        form.add_error(default, error.messages)
        return
    for field, field_errors in error.message_dict.items():
        field = (aliases or {}).get(field, field)
        if field in form.fields:
            form.add_error(field, field_errors)
        elif field == NON_FIELD_ERRORS:
            form.add_error(default, field_errors)
        else:
            form.add_error(default, [f"{field}: {message}" for message in field_errors])


class ProjectForm(forms.Form):
    """Creating (with organization and task type) or changing a project's settings."""

    organization = forms.ModelChoiceField(
        label=_("Client"),
        queryset=None,
        empty_label=None,
        help_text=_("The client organization that owns the project and its data."),
    )
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    task_type = forms.ChoiceField(
        label=_("Task type"), choices=Project._meta.get_field("task_type").choices
    )
    label_schema = forms.CharField(
        label=_("Label schema (JSON)"),
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text=_("The labels annotators choose from. Edit them above; this is what is saved."),
    )
    instructions = forms.CharField(
        label=_("Instructions (Markdown)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("Shown beside every task. Headings, lists, bold, links and tables work."),
    )
    decision = forms.ChoiceField(
        label=_("How a label is decided"),
        choices=[
            (
                Project.Decision.FIXED,
                _("Ask a fixed number of annotators per item and take the majority"),
            ),
            (
                Project.Decision.ADAPTIVE,
                _(
                    "Ask one annotator at a time until the answer is sure enough "
                    "(classification, preference and rating)"
                ),
            ),
        ],
        widget=forms.RadioSelect,
    )
    overlap = forms.IntegerField(
        label=_("Annotators per item"),
        min_value=1,
        max_value=20,
        help_text=_("Fixed: every item is labelled by this many different annotators."),
    )
    target_confidence = percent_field(
        _("Deliver a label once it is this sure (%)"),
        minimum=Decimal(50),
        maximum=Decimal("99.9"),
        help_text=_("Adaptive: higher means more correct labels and more answers paid for."),
    )
    max_annotations = forms.IntegerField(
        label=_("At most this many answers per item"),
        min_value=1,
        max_value=20,
        help_text=_("Adaptive: an item still unsure after this many goes to a reviewer."),
    )
    gold_ratio = percent_field(
        _("Gold tasks (%)"),
        minimum=Decimal(0),
        maximum=HUNDRED,
        help_text=_(
            "The share of each annotator's tasks that have a known answer; 2–5 % is typical."
        ),
    )
    review_rate = percent_field(
        _("Finished items sampled for review (%)"),
        minimum=Decimal(0),
        maximum=HUNDRED,
        help_text=_("A reviewer checks this share of the items that were decided."),
    )
    required_tier = forms.TypedChoiceField(
        label=_("Skill tier needed"), choices=TIER_CHOICES, coerce=int
    )
    price_per_1k_tokens = forms.DecimalField(
        label=_("Price per 1,000 tokens (CNY)"),
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=4,
        required=False,
        help_text=_("Leave empty for the tier's list price."),
    )
    workforce = forms.ModelChoiceField(
        label=_("Annotation centre"),
        queryset=None,
        empty_label=None,
        help_text=_("The centre whose annotators and reviewers do the work."),
    )
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[
            (Project.Status.ACTIVE, _("Active: annotators get its tasks")),
            (Project.Status.DRAFT, _("Draft: nobody works on it yet")),
            (Project.Status.PAUSED, _("Paused")),
            (Project.Status.COMPLETED, _("Completed")),
            (Project.Status.ARCHIVED, _("Archived")),
        ],
    )

    def __init__(self, *args, organizations, workforces, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["workforce"].queryset = workforces
        if project is None:
            self.fields["organization"].queryset = organizations
            # A new project starts as a draft only when asked: people expect to
            # import and pre-label straight away.
            self.fields["status"].choices = self.fields["status"].choices[:2]
        else:
            del self.fields["organization"]

    def clean_label_schema(self):
        text = self.cleaned_data["label_schema"].strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(
                _("Not valid JSON: %(error)s") % {"error": error}
            ) from error
        if not isinstance(value, dict):
            raise forms.ValidationError(_("Expected a JSON object."))
        return value

    def clean_target_confidence(self):
        return (self.cleaned_data["target_confidence"] / HUNDRED).quantize(Decimal("0.001"))

    def clean_gold_ratio(self):
        return (self.cleaned_data["gold_ratio"] / HUNDRED).quantize(Decimal("0.001"))

    def clean_review_rate(self):
        return (self.cleaned_data["review_rate"] / HUNDRED).quantize(Decimal("0.001"))

    def service_fields(self, *, list_prices: dict) -> dict:
        """The settings as the project services take them."""
        fields = {k: v for k, v in self.cleaned_data.items() if k != "organization"}
        if fields.get("price_per_1k_tokens") is None:
            list_price = list_prices.get(fields["required_tier"], Decimal(0))
            fields["price_per_1k_tokens"] = list_price.quantize(Decimal("0.0001"))
        return fields

    @staticmethod
    def initial_from(project: Project) -> dict:
        return {
            "name": project.name,
            "description": project.description,
            "task_type": project.task_type,
            "label_schema": json.dumps(project.label_schema, ensure_ascii=False, indent=2),
            "instructions": project.instructions,
            "decision": project.decision,
            "overlap": project.overlap,
            "target_confidence": (project.target_confidence * HUNDRED).normalize(),
            "max_annotations": project.max_annotations,
            "gold_ratio": (project.gold_ratio * HUNDRED).normalize(),
            "review_rate": (project.review_rate * HUNDRED).normalize(),
            "required_tier": project.required_tier,
            "price_per_1k_tokens": project.price_per_1k_tokens,
            "workforce": project.workforce_id,
            "status": project.status,
        }


NEW_PROJECT_INITIAL = {
    "task_type": "classification",  # the registry's first type, with an example schema
    "label_schema": json.dumps(
        {
            "labels": [
                {"value": "positive", "title": "正面 positive", "hotkey": "1"},
                {"value": "negative", "title": "负面 negative", "hotkey": "2"},
            ]
        },
        ensure_ascii=False,
        indent=2,
    ),
    "decision": Project.Decision.FIXED,
    "overlap": 2,
    "target_confidence": Decimal(98),
    "max_annotations": 5,
    "gold_ratio": Decimal(3),
    "review_rate": Decimal(5),
    "required_tier": 1,
    "status": Project.Status.ACTIVE,
}


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_(
            "JSONL, a JSON array, CSV or Label Studio JSON, in UTF-8 or GBK. A CSV's columns "
            "are the item's fields (e.g. text); label or gold marks a gold item."
        ),
    )
    text_column = forms.CharField(
        label=_("Column holding the text"),
        max_length=200,
        required=False,
        help_text=_(
            "Only when the file's text column has another name than text, e.g. review "
            "in a file of delivery reviews."
        ),
    )
    on_error = forms.ChoiceField(
        label=_("Rows with errors"), choices=ImportJob.OnError.choices, initial="reject"
    )
    on_conflict = forms.ChoiceField(
        label=_("Rows already imported (same external_id)"),
        choices=ImportJob.OnConflict.choices,
        initial="update",
    )

    def columns(self) -> dict:
        column = self.cleaned_data.get("text_column", "").strip()
        return {column: "text"} if column and column != "text" else {}


class ExportForm(forms.Form):
    format = forms.ChoiceField(label=_("Format"), choices=ExportFormat.choices)
    approved_only = forms.BooleanField(
        label=_("Approved answers only"), required=False, initial=True
    )

    def __init__(self, *args, formats=None, **kwargs):
        super().__init__(*args, **kwargs)
        if formats is not None:
            self.fields["format"].choices = [c for c in ExportFormat.choices if c[0] in formats]


class DatasetForm(forms.Form):
    validation_ratio = percent_field(
        _("Held out for validation (%)"),
        minimum=Decimal(0),
        maximum=Decimal(50),
        help_text=_("Answers kept out of training to score the fine-tuned model."),
    )

    def clean_validation_ratio(self):
        return (self.cleaned_data["validation_ratio"] / HUNDRED).quantize(Decimal("0.001"))


class StatementMonthForm(forms.Form):
    month = forms.DateField(
        label=_("Month"),
        input_formats=["%Y-%m"],
        widget=forms.DateInput(format="%Y-%m", attrs={"type": "month"}),
        error_messages={"invalid": _("Expected a month as YYYY-MM.")},
    )

    def clean_month(self):
        month = self.cleaned_data["month"]
        if not 2000 <= month.year <= 2100:
            raise forms.ValidationError(_("Expected a month from 2000 to 2100."))
        return month
