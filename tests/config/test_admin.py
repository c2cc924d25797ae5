"""The Django admin: every model of the platform registered, append-only tables read only."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.factories import annotation_project, items, member, worker

pytestmark = pytest.mark.django_db

PROJECT_APPS = {"tenants", "eventhooks", "valuechain", "annotation", "compute", "kpireports"}
# Tables no one edits: the ledger and its rollups, histories, metering, audit.
APPEND_ONLY = {
    "valuechain.ledgerentry",
    "valuechain.ledgerrollup",
    "valuechain.regionmonthrollup",
    "valuechain.backendrollup",
    "valuechain.workermonthrollup",
    "valuechain.tierchange",
    "tenants.auditevent",
    "compute.inferencecall",
    "eventhooks.webhookattempt",
    "annotation.annotation",
    "annotation.review",
}


def project_models():
    return [m for m in apps.get_models() if m._meta.app_label in PROJECT_APPS]


def test_every_model_is_registered_with_a_translatable_plural():
    missing = [m._meta.label for m in project_models() if m not in admin.site._registry]
    assert not missing, f"not in the admin: {missing}"
    for model in project_models():
        # Set explicitly (Django's default plural only adds an "s": "ledger entrys").
        assert "verbose_name_plural" in model._meta.original_attrs, model._meta.label


def test_append_only_tables_cannot_be_added_changed_or_deleted(rf):
    superuser = member(is_superuser=True, is_staff=True)
    request = rf.get("/admin/")
    request.user = superuser
    for model in project_models():
        if model._meta.label_lower not in APPEND_ONLY:
            continue
        model_admin = admin.site._registry[model]
        assert not model_admin.has_add_permission(request), model._meta.label
        assert not model_admin.has_change_permission(request), model._meta.label
        assert not model_admin.has_delete_permission(request), model._meta.label
        assert model_admin.has_view_permission(request), model._meta.label


def test_every_changelist_and_change_page_renders(client):
    project = annotation_project()
    items(project, 2)
    annotator = worker(project)
    from annotation import services

    lease = services.assignment_lease(project=project, annotator=annotator)
    services.annotation_submit(
        assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
    )
    client.force_login(member(is_superuser=True, is_staff=True))
    for model in project_models():
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        first = model._default_manager.first()
        if first is not None:
            page = client.get(
                reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            )
            assert page.status_code == 200, (meta.label, page.status_code)


def test_admin_names_are_translated(client, settings):
    from django.utils import translation

    from valuechain.models import LedgerEntry

    with translation.override("zh-hans"):
        assert str(LedgerEntry._meta.verbose_name_plural) != "ledger entries"
