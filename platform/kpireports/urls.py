from django.urls import path

from . import views

app_name = "kpireports"

urlpatterns = [
    path("", views.reports_home, name="home"),
    path("<str:code>/", views.region_dashboard, name="region"),
    path("<str:code>/report.<str:file_format>", views.region_export, name="export"),
]
