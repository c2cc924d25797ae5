from django.core.checks import run_checks
from django.test import override_settings


def _ids():
    return {error.id for error in run_checks() if error.id.startswith("kpireports")}


def test_a_sound_configuration_passes():
    assert _ids() == set()


@override_settings(KPI_TRAP_THRESHOLD="1.5", KPI_TRAP_MONTHS=0)
def test_a_contradictory_trap_configuration_is_refused():
    assert _ids() == {"kpireports.E001", "kpireports.E002"}


@override_settings(KPI_TRAP_THRESHOLD="thirty percent")
def test_a_threshold_that_is_not_a_number_is_refused():
    assert _ids() == {"kpireports.E001"}
