from django import template
from django.utils.safestring import mark_safe

from annotation.instructions import instructions_html

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    """A project's instructions as cleaned HTML (annotation.instructions)."""
    return mark_safe(instructions_html(text))  # noqa: S308 - cleaned by nh3 above
