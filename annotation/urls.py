"""Web pages for annotators and reviewers (the workspace)."""

from django.urls import path

from . import views

app_name = "annotation"

urlpatterns = [
    path("", views.projects, name="projects"),
    path("projects/<int:pk>/", views.workspace, name="workspace"),
    path("projects/<int:pk>/review/", views.review, name="review"),
    path("me/", views.me, name="me"),
]
