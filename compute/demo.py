"""The built-in model backend for `make run`: the Procfile's `model` process."""

from decimal import Decimal

from django.conf import settings
from django.db import transaction

from tenants.models import Region

from .models import Backend

BUILTIN_NAME = "Built-in CPU model"


@transaction.atomic
def demo_seed() -> int:
    """Register the built-in backend once; returns how many rows it created."""
    _, created = Backend.objects.get_or_create(
        organization=None,
        name=BUILTIN_NAME,
        defaults={
            "kind": Backend.Kind.BUILTIN,
            "base_url": settings.BUILTIN_MODEL_URL,
            "models_served": ["tokenworks-base"],
            "region": Region.objects.filter(code="520100").first(),
            "gpu_kind": "CPU",
            "gpu_count": 0,
            # Priced by energy: a laptop-class CPU at Guizhou's industrial tariff.
            "electricity_price_kwh": Decimal("0.45"),
            "power_draw_kw": Decimal("0.065"),
            "max_concurrency": 8,
        },
    )
    return int(created)


@transaction.atomic
def history_backend_ensure(*, name: str, region: Region) -> Backend:
    """A platform-wide GPU pool that only carries seeded history: inactive, never called."""
    backend, _ = Backend.objects.get_or_create(
        organization=None,
        name=name,
        defaults={
            "kind": Backend.Kind.VLLM,
            "base_url": "http://127.0.0.1:9/v1",  # history only: never called
            "region": region,
            "gpu_kind": "A800",
            "gpu_count": 8,
            "max_concurrency": 64,
            "is_active": False,
        },
    )
    return backend
