"""Templates ask the permission rules, never roles: `{% page_permissions user as can %}`."""

from django import template

from tenants.permissions import page_permissions as _page_permissions

register = template.Library()


@register.simple_tag
def page_permissions(user) -> dict[str, bool]:
    """{"workspace", "reports", "backends"} -> whether user may open that page."""
    return _page_permissions(user)
