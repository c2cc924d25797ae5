import pytest

from sitehealth.models import Heartbeat
from sitehealth.services import heartbeat_record

pytestmark = pytest.mark.django_db


def test_recording_twice_keeps_one_row_with_the_later_time():
    first = heartbeat_record(source="beat").seen_at
    second = heartbeat_record(source="beat").seen_at
    assert Heartbeat.objects.filter(source="beat").count() == 1
    assert second >= first
