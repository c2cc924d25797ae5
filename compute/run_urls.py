"""Pre-labeling and fine-tuning pages, under the project's address (compute.run_views)."""

from django.urls import path

from . import run_views as views

urlpatterns = [
    path("<int:pk>/runs/", views.project_runs, name="project-runs"),
    path("<int:pk>/runs/prelabel/", views.prelabel_start, name="project-prelabel-start"),
    path(
        "<int:pk>/runs/prelabel/<int:run_id>/",
        views.prelabel_run_detail,
        name="project-prelabel-run",
    ),
    path(
        "<int:pk>/runs/prelabel/<int:run_id>/status/",
        views.prelabel_run_status,
        name="project-prelabel-run-status",
    ),
    path(
        "<int:pk>/runs/prelabel/<int:run_id>/<str:action>/",
        views.prelabel_run_action,
        name="project-prelabel-run-action",
    ),
    path("<int:pk>/runs/finetune/", views.finetune_start, name="project-finetune-start"),
    path(
        "<int:pk>/runs/finetune/<int:run_id>/",
        views.finetune_run_detail,
        name="project-finetune-run",
    ),
    path(
        "<int:pk>/runs/finetune/<int:run_id>/status/",
        views.finetune_run_status,
        name="project-finetune-run-status",
    ),
]
