import pytest
from django.core.exceptions import ImproperlyConfigured

from annotation.selectors import annotator_quality
from tests.factories import UserFactory
from valuechain import quality

pytestmark = pytest.mark.django_db


def test_annotation_registers_its_quality_record_when_the_app_is_ready():
    user = UserFactory()
    assert quality._provider is annotator_quality
    assert quality.quality_record(annotator=user) == annotator_quality(annotator=user)


def test_without_a_provider_the_record_is_refused_clearly(monkeypatch):
    monkeypatch.setattr(quality, "_provider", None)
    with pytest.raises(ImproperlyConfigured, match=r"AnnotationConfig\.ready"):
        quality.quality_record(annotator=UserFactory())


def test_a_registered_provider_is_asked_by_keyword(monkeypatch):
    monkeypatch.setattr(quality, "_provider", None)
    seen = []
    record = {
        "gold_accuracy": None,
        "gold_checked": 0,
        "review_acceptance": None,
        "reviewed": 0,
        "tokens": 0,
    }
    quality.quality_provider_register(lambda *, annotator: seen.append(annotator) or record)
    assert quality.quality_record(annotator="someone") is record and seen == ["someone"]
