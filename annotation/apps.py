from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnnotationConfig(AppConfig):
    """Projects, items, assignments, annotations, reviews and exports (issue 3)."""

    name = "annotation"
    verbose_name = _("Annotation")
