"""Property-based fuzzing of the REST API from its own OpenAPI schema: whatever is sent, never a 500,
and every error has our shape."""

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


def _fuzz(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
            assert "error" in response.json(), f"{operation.label}: {response.text}"

    fuzz()


def test_no_input_makes_the_api_fail(app, api_as) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {api_as('admin').token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:
        _fuzz(operation, headers)
