from django.contrib import admin
from django.urls import include, path

from conversions import pages, views

urlpatterns = [
    path("", pages.index, name="root"),
    path("conversions/<str:conversion_id>/", pages.conversion_page, name="conversion-page"),
    path("conversions/<str:conversion_id>/results", pages.conversion_results, name="conversion-results"),
    path("health", views.health, name="health"),
    path("api/v1/", include("conversions.api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "conversions.views.not_found"
handler500 = "conversions.views.server_error"
