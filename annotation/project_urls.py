"""The managers' project pages (annotation.project_views); names without a namespace,
so the navigation says {% url 'project-list' %}."""

from django.urls import path

from . import project_views as views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("new/", views.project_create, name="project-create"),
    path("markdown-preview/", views.markdown_preview, name="project-markdown-preview"),
    path("<int:pk>/", views.project_detail, name="project-detail"),
    path("<int:pk>/settings/", views.project_settings, name="project-settings"),
    path("<int:pk>/import/", views.project_import, name="project-import"),
    path("<int:pk>/imports/<uuid:job_id>/", views.import_detail, name="project-import-detail"),
    path(
        "<int:pk>/imports/<uuid:job_id>/status/",
        views.import_status,
        name="project-import-status",
    ),
    path("<int:pk>/export/", views.project_export, name="project-export"),
    path(
        "<int:pk>/exports/<uuid:job_id>/status/",
        views.export_status,
        name="project-export-status",
    ),
    path(
        "<int:pk>/exports/<uuid:job_id>/download/",
        views.export_download,
        name="project-export-download",
    ),
    path("<int:pk>/datasets/", views.dataset_create, name="project-dataset-create"),
    path(
        "<int:pk>/datasets/<int:dataset_id>/<str:split>/",
        views.dataset_download,
        name="project-dataset-download",
    ),
]
