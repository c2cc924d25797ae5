"""The project's URLs plus one view that fails, for the 500 page tests."""

from django.urls import path

from config.urls import handler403, handler404, handler500, urlpatterns

__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]


def boom(request):
    raise RuntimeError("secret detail: postgres://user:password@db/tokenworks")


urlpatterns = [
    path("boom/", boom),
    path("api/v1/boom/", boom),
    *urlpatterns,
]
