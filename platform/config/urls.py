from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from annotation import api as annotation_api
from annotation import people_views, statement_views
from compute import api as compute_api
from compute import views as compute_views
from eventhooks import api as eventhooks_api
from eventhooks import views as eventhooks_views
from kpireports import api as kpireports_api
from sitehealth.views import healthz
from tenants import api as tenants_api
from tenants import views as tenants_views
from valuechain import api as valuechain_api

from . import api_docs, metrics
from .request_guards import api_not_found

router = DefaultRouter()
# The annotators' routes first: the resolver tries patterns in order, and these
# answer most of the requests (no other prefix can match a workspace/ path).
router.register(
    "workspace/projects", annotation_api.WorkspaceProjectViewSet, basename="workspace-project"
)
router.register(
    "workspace/assignments",
    annotation_api.WorkspaceAssignmentViewSet,
    basename="workspace-assignment",
)
router.register("workspace/items", annotation_api.WorkspaceItemViewSet, basename="workspace-item")
router.register("regions", tenants_api.RegionViewSet, basename="region")
router.register("organizations", tenants_api.OrganizationViewSet, basename="organization")
router.register("memberships", tenants_api.MembershipViewSet, basename="membership")
router.register("api-tokens", tenants_api.ApiTokenViewSet, basename="api-token")
router.register("audit-events", tenants_api.AuditEventViewSet, basename="audit-event")
router.register("workforces", annotation_api.WorkforceViewSet, basename="workforce")
router.register("projects", annotation_api.ProjectViewSet, basename="project")
router.register("import-jobs", annotation_api.ImportJobViewSet, basename="import-job")
router.register("items", annotation_api.ItemViewSet, basename="item")
router.register("results", annotation_api.ItemResultViewSet, basename="result")
router.register("export-jobs", annotation_api.ExportJobViewSet, basename="export-job")
router.register(
    "dataset-versions", annotation_api.DatasetVersionViewSet, basename="dataset-version"
)
router.register("backends", compute_api.BackendViewSet, basename="backend")
router.register("prompts", compute_api.PromptTemplateViewSet, basename="prompt")
router.register("prelabel-runs", compute_api.PrelabelRunViewSet, basename="prelabel-run")
router.register("predictions", compute_api.PredictionViewSet, basename="prediction")
router.register("inference-calls", compute_api.InferenceCallViewSet, basename="inference-call")
router.register("finetune-runs", compute_api.FineTuneRunViewSet, basename="finetune-run")
router.register("webhooks", eventhooks_api.WebhookEndpointViewSet, basename="webhook")
router.register(
    "webhook-deliveries", eventhooks_api.WebhookDeliveryViewSet, basename="webhook-delivery"
)
router.register("skill-tiers", valuechain_api.SkillTierViewSet, basename="skill-tier")
router.register("tier-changes", valuechain_api.TierChangeViewSet, basename="tier-change")
router.register("ledger-entries", valuechain_api.LedgerEntryViewSet, basename="ledger-entry")
router.register("reports/regions", kpireports_api.ReportRegionViewSet, basename="report-region")

api_v1 = [
    path("me/", tenants_api.MeView.as_view(), name="me"),
    path("workspace/me/", annotation_api.WorkspaceMeView.as_view(), name="workspace-me"),
    *router.urls,
]

urlpatterns = [
    # First, for the same reason (no pattern below matches an api/v1/ path).
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("", tenants_views.home, name="home"),
    path("tokens/", tenants_views.api_tokens, name="api-tokens"),
    path("tokens/<int:pk>/revoke/", tenants_views.api_token_revoke, name="api-token-revoke"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("workspace/", include("annotation.urls")),
    path("statements/", statement_views.statements, name="statements"),
    path("statements/<int:pk>/", statement_views.statement, name="statement"),
    path("people/", people_views.people, name="people"),
    path("people/<int:organization_id>/", people_views.people, name="people-centre"),
    path("people/<int:organization_id>/<int:user_id>/", people_views.person, name="person"),
    path("projects/", include("annotation.project_urls")),
    path("projects/", include("compute.run_urls")),
    path("webhooks/", eventhooks_views.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/delete/", eventhooks_views.webhook_delete, name="webhook-delete"),
    path("reports/", include("kpireports.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_docs.swagger_ui, name="api-docs"),
    path("healthz", healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that name no icon (the API's JSON, files).
    path("favicon.ico", lambda request: redirect(static("favicon.svg"), permanent=True)),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("compute/backends/", compute_views.backends_page, name="compute-backends"),
    path(
        "compute/backends/<int:pk>/<slug:action>/",
        compute_views.backend_action,
        name="compute-backend-action",
    ),
    # Last: an /api/ address no route matched (an id the router refuses, a
    # missing slash) answers in the API's JSON error shape, not an HTML page.
    re_path(r"^api/", api_not_found),
]

handler403 = "config.error_pages.permission_denied"
handler404 = "config.error_pages.page_not_found"
handler500 = "config.error_pages.server_error"

admin.site.site_header = "Tokenworks"
admin.site.site_title = "Tokenworks"
