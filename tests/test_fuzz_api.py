"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis, in
process through the WSGI app): whatever a client sends, the answer is never a 5xx, and
every 4xx is JSON with a readable ``detail``."""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

# The default run sends 8 examples per operation; the slow run (`make bench`) 50, with
# the same checks, so a rarer failing input is still looked for.
EXAMPLES_PER_OPERATION = 8
EXAMPLES_PER_OPERATION_SLOW = 50
FUZZ_SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def served_schema() -> dict:
    """The document /api/v1/schema serves, made by the same generator as that view (at
    collection time there is no database for a request to go through)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def load_schema():
    from django.core.wsgi import get_wsgi_application

    loaded = schemathesis.openapi.from_dict(served_schema())
    loaded.app = get_wsgi_application()  # calls go in process, through Django's handler
    return loaded


@pytest.fixture
def connection_kept_open():
    """Django closes the database connection around each request; the test's
    transaction lives on it (Django's own test client does the same)."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield
    for signal in signals:
        signal.connect(close_old_connections)


schema = load_schema()


def client_errors_say_why(ctx, response, case):
    """A 4xx answer is ``{"detail": "<words>"}``, as every other error of the service."""
    if 400 <= response.status_code < 500:
        content_type = {name.lower(): values for name, values in response.headers.items()}.get("content-type", [""])
        assert content_type[0].startswith("application/json"), response.text[:200]
        detail = response.json().get("detail")
        assert isinstance(detail, str) and detail.strip(), response.text[:200]


def call_and_check(case) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error, client_errors_say_why])


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, **FUZZ_SETTINGS)
def test_no_operation_answers_a_server_error(db, connection_kept_open, case):
    call_and_check(case)


# The same property with more examples; the default run keeps every operation fuzzed above.
@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION_SLOW, **FUZZ_SETTINGS)
def test_no_operation_answers_a_server_error_with_many_examples(db, connection_kept_open, case):
    call_and_check(case)
