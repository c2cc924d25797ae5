from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tenants.demo import DEMO_PASSWORD, demo_seed


class Command(BaseCommand):
    help = "Load the demo organizations and one login per role. Running it again changes nothing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even when DEBUG is off (the demo passwords are public).",
        )

    def handle(self, *args, allow_production=False, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError(
                "Refusing to create demo logins with a public password while DEBUG is off; "
                "pass --allow-production if you really mean it."
            )
        result = demo_seed()
        created = result.created
        # Product apps add their own demo data through a `demo` module with a
        # demo_seed() returning how many rows it created (none the second time).
        for app in apps.get_app_configs():
            if app.name == "tenants":
                continue
            try:
                module = import_module(f"{app.name}.demo")
            except ModuleNotFoundError as error:
                if error.name != f"{app.name}.demo":
                    raise
                continue
            created += module.demo_seed()
        self.stdout.write(f"Demo data: {created} row(s) created.")
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, role, organization in result.logins:
            self.stdout.write(f"  {role:<17} {username:<12} {organization}")
        self.stdout.write(
            "API tokens: sign in as client, manager, official or official-city and open "
            "/tokens/ (e.g. official-city makes the Guiyang office's token for "
            "/api/v1/reports/regions/); the secret is shown once."
        )
