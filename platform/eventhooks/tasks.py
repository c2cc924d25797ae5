from celery import shared_task

from .models import WebhookDelivery
from .services import webhook_deliver


@shared_task(name="eventhooks.webhook_deliver", time_limit=60, soft_time_limit=45)
def webhook_deliver_task(delivery_id: str) -> str:
    delivery = webhook_deliver(delivery_id=delivery_id)
    if delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at:
        # The backoff schedule lives in the delivery row; a retry is a new
        # message due at next_attempt_at, and a duplicate one finds the
        # delivery finished and does nothing.
        webhook_deliver_task.apply_async(args=[delivery_id], eta=delivery.next_attempt_at)
    return delivery.status
