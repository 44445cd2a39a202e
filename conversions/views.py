"""Service-level routes outside the versioned API."""

from django.db import connection
from django.db.utils import DatabaseError
from django.http import JsonResponse

SERVICE_NAME = "Dots OCR API"


def health(request):
    """Healthy once the database answers (the original app's route and body)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse(
            {"status": "unhealthy", "service": SERVICE_NAME, "detail": "Database unavailable"}, status=503
        )
    return JsonResponse({"status": "healthy", "service": SERVICE_NAME})


def root(request):
    return JsonResponse({"message": f"{SERVICE_NAME} is running", "api": "/api/v1/", "health": "/health"})


def not_found(request, exception=None):
    return JsonResponse({"detail": f"Not found: {request.path}"}, status=404)


def server_error(request):
    return JsonResponse({"detail": "Internal server error"}, status=500)
