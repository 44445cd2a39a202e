from django.contrib import admin
from django.urls import include, path

from conversions import views

urlpatterns = [
    path("", views.root, name="root"),
    path("health", views.health, name="health"),
    path("api/v1/", include("conversions.api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "conversions.views.not_found"
handler500 = "conversions.views.server_error"
