"""Web pages for annotators and reviewers (the workspace)."""

app_name = "annotation"

urlpatterns: list = []
