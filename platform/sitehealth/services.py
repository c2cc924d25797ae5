from django.db import transaction
from django.utils import timezone

from .models import Heartbeat


@transaction.atomic
def heartbeat_record(*, source: str, hostname: str = "") -> Heartbeat:
    # update_or_create keyed on source: running twice leaves one row.
    heartbeat, _ = Heartbeat.objects.update_or_create(
        source=source, defaults={"seen_at": timezone.now(), "hostname": hostname}
    )
    return heartbeat
