from celery import shared_task

from .services import tiers_review


@shared_task(name="valuechain.tiers_review", time_limit=1800, soft_time_limit=1700)
def tiers_review_task() -> dict:
    return tiers_review()
