from celery import shared_task

from .services import ledger_partitions_ensure, rollups_catch_up, tiers_review


@shared_task(name="valuechain.tiers_review", time_limit=1800, soft_time_limit=1700)
def tiers_review_task() -> dict:
    return tiers_review()


# Beat runs it every few seconds; a run that finds another still working skips
# the tables it holds (their watermark rows are locked), so runs never pile up.
@shared_task(name="valuechain.rollups_catch_up", time_limit=600, soft_time_limit=570)
def rollups_catch_up_task() -> dict:
    return rollups_catch_up()


@shared_task(name="valuechain.ledger_partitions_ensure", time_limit=300)
def ledger_partitions_ensure_task() -> list:
    return ledger_partitions_ensure()
