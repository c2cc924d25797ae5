"""Swagger UI and ReDoc under the site's Content-Security-Policy.

Both are served from drf-spectacular-sidecar's static files. Swagger UI runs
with its start-up script as a separate file (the split view) and needs only
data: images (its stylesheet draws icons as data: SVG). ReDoc styles itself
with styled-components, which writes <style> elements at run time, and parses
the schema in a blob: worker: those two allowances hold for its page alone.
"""

from csp.decorators import csp_update
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView


class SwaggerView(SpectacularSwaggerSplitView):
    template_name = "api_docs/swagger_ui.html"


class RedocView(SpectacularRedocView):
    template_name = "api_docs/redoc.html"


swagger_ui = csp_update({"img-src": ["data:"]})(SwaggerView.as_view(url_name="api-schema"))
redoc = csp_update(
    {"style-src": ["'unsafe-inline'"], "img-src": ["data:"], "worker-src": ["blob:"]}
)(RedocView.as_view(url_name="api-schema"))
