from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from conversions.api import results, views

app_name = "api"

urlpatterns = [
    path("documents", views.DocumentListView.as_view(), name="document-list"),
    path("documents/<str:document_id>", views.DocumentDetailView.as_view(), name="document-detail"),
    path("conversions", views.ConversionListView.as_view(), name="conversion-list"),
    path("conversions/<str:conversion_id>", views.ConversionDetailView.as_view(), name="conversion-detail"),
    path("conversions/<str:conversion_id>/cancel", views.ConversionCancelView.as_view(), name="conversion-cancel"),
    path("conversions/<str:conversion_id>/retry", views.ConversionRetryView.as_view(), name="conversion-retry"),
    path(
        "conversions/<str:conversion_id>/markdown", views.ConversionMarkdownView.as_view(), name="conversion-markdown"
    ),
    path("conversions/<str:conversion_id>/html", views.ConversionHtmlView.as_view(), name="conversion-html"),
    path("conversions/<str:conversion_id>/text", views.ConversionTextView.as_view(), name="conversion-text"),
    path("conversions/<str:conversion_id>/pages", views.ConversionPagesView.as_view(), name="conversion-pages"),
    path(
        "conversions/<str:conversion_id>/pages/<int:page_no>/image",
        results.ConversionPageImageView.as_view(),
        name="conversion-page-image",
    ),
    path(
        "conversions/<str:conversion_id>/files/<str:name>", results.ConversionFileView.as_view(), name="conversion-file"
    ),
    path("conversions/<str:conversion_id>/download.zip", results.ConversionZipView.as_view(), name="conversion-zip"),
    path("batches", views.BatchListView.as_view(), name="batch-list"),
    path("batches/<str:batch_id>", views.BatchDetailView.as_view(), name="batch-detail"),
    path("auth/token", views.AuthTokenView.as_view(), name="auth-token"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
]
