import socket

from celery import shared_task

from .services import heartbeat_record


@shared_task(name="sitehealth.tasks.heartbeat_record", time_limit=30, soft_time_limit=20)
def heartbeat_record_task(source: str = "beat") -> str:
    heartbeat = heartbeat_record(source=source, hostname=socket.gethostname())
    return heartbeat.seen_at.isoformat()
