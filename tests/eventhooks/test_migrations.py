"""The migration that encrypts the signing secrets stored in clear before it."""

import pytest
from django.core.management import call_command
from django.db import connection

from eventhooks.models import WebhookEndpoint
from tests.eventhooks.conftest import subscribe
from tests.factories import annotation_project

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_clear_secrets_are_encrypted_by_the_migration():
    endpoint, _ = subscribe(annotation_project(), "https://example.com/hook")
    with connection.cursor() as cursor:
        # Deferred foreign-key checks of the rows above would keep PostgreSQL
        # from altering the table in this (test) transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    # Back to the schema with the clear column (its reverse decrypts), as an
    # old release left it, with a secret of the old form.
    call_command("migrate", "eventhooks", "0002", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventhooks_webhookendpoint SET secret = %s, secret_encrypted = '' "
            "WHERE id = %s",
            ["whsec_legacy-clear_secret", endpoint.pk],
        )
    call_command("migrate", "eventhooks", verbosity=0)
    endpoint = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert endpoint.signing_secret() == "whsec_legacy-clear_secret"
    assert "legacy" not in endpoint.secret_encrypted
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'eventhooks_webhookendpoint'"
        )
        assert "secret" not in {row[0] for row in cursor.fetchall()}
