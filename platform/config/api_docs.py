"""Swagger UI under the site's Content-Security-Policy.

Served from drf-spectacular-sidecar's static files, with its start-up script
as a separate file (the split view); it needs only data: images (its
stylesheet draws icons as data: SVG). There is no ReDoc page: ReDoc writes
inline styles at run time and loads its logo from a CDN, which the policy
refuses, and Swagger UI plus /api/schema/ serve the same readers.
"""

from csp.decorators import csp_update
from drf_spectacular.views import SpectacularSwaggerSplitView


class SwaggerView(SpectacularSwaggerSplitView):
    template_name = "api_docs/swagger_ui.html"


swagger_ui = csp_update({"img-src": ["data:"]})(SwaggerView.as_view(url_name="api-schema"))
