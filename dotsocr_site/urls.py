from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from conversions import compat, metrics, pages, views

urlpatterns = [
    path("", pages.index, name="root"),
    path("conversions/<str:conversion_id>/", pages.conversion_page, name="conversion-page"),
    path("conversions/<str:conversion_id>/results", pages.conversion_results, name="conversion-results"),
    path("health", views.health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/", include("conversions.api.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The original app's routes (conversions/compat.py).
    path("config", compat.ConfigView.as_view()),
    path("upload", compat.UploadView.as_view()),
    path("documents", compat.DocumentsView.as_view()),
    path("documents/<path:filename>", compat.DocumentDeleteView.as_view()),
    path("convert", compat.ConvertView.as_view()),
    path("convert-doc", compat.ConvertDocView.as_view()),
    path("conversion-status/<str:conversion_id>", compat.ConversionStatusView.as_view()),
    path("worker-pool-status", compat.WorkerPoolStatusView.as_view()),
    path("markdown-files/<str:stem>", compat.MarkdownFilesView.as_view()),
    path("markdown/<str:stem>", compat.MarkdownView.as_view()),
    path("image/<str:stem>", compat.ImageView.as_view()),
]

handler404 = "conversions.views.not_found"
handler500 = "conversions.views.server_error"
