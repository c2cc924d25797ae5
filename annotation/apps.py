from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnnotationConfig(AppConfig):
    """Projects, items, assignments, annotations, reviews and exports (issue 3)."""

    name = "annotation"
    verbose_name = _("Annotation")

    def ready(self):
        # valuechain's tier review judges a quality record that annotation
        # measures; valuechain may not import annotation, so annotation registers.
        from valuechain.quality import quality_provider_register

        from .selectors import annotator_quality

        quality_provider_register(annotator_quality)
