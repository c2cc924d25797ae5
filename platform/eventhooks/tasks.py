from celery import shared_task

from .models import WebhookDelivery
from .services import webhook_attempt_make, webhook_deliveries_sweep


@shared_task(name="eventhooks.webhook_deliver", time_limit=60, soft_time_limit=45)
def webhook_deliver_task(delivery_id: str, attempt: int | None = None) -> str:
    made = webhook_attempt_make(delivery_id=delivery_id, attempt=attempt)
    if made is None:
        # A duplicate message, or one another attempt overtook: nothing to send.
        return "skipped"
    delivery = made.delivery
    if (
        delivery.status == WebhookDelivery.Status.PENDING
        and delivery.next_attempt_at
        and delivery.attempts == made.number
    ):
        # The schedule lives in the delivery row; the retry is a new message
        # due at next_attempt_at, numbered so that a duplicate sends nothing.
        webhook_deliver_task.apply_async(
            args=[delivery_id, made.number + 1], eta=delivery.next_attempt_at
        )
    return delivery.status


@shared_task(name="eventhooks.webhook_deliveries_sweep", time_limit=120, soft_time_limit=100)
def webhook_deliveries_sweep_task() -> int:
    return webhook_deliveries_sweep()
