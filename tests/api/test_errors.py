"""The one application error: ``invalid_param`` and ``validation_error`` as the DRF handler renders them."""
from __future__ import annotations

import json
import math

import pytest
from rest_framework import serializers

from api.core.errors import (
    ApplicationError,
    exception_handler,
    invalid_param,
    validated,
    validation_error,
)
from tests.api.helpers import error_of


def _rendered(exc: Exception) -> tuple[int, dict]:
    response = exception_handler(exc, {})
    # Through JSON, as a client reads it (ErrorDetail and ReturnDict become plain str and dict).
    return response.status_code, json.loads(json.dumps(response.data))


class _Budget(serializers.Serializer):
    budget = serializers.FloatField()
    unit = serializers.ChoiceField(choices=["samples", "tokens"], default="samples")


def test_invalid_param_names_the_parameter_the_allowed_values_and_what_was_given():
    status, body = _rendered(invalid_param("kind", "x", allowed=["a", "b"], code="unknown_kind"))
    assert status == 400
    assert body == {"error": {"code": "unknown_kind", "message": "kind must be one of ['a', 'b']; got 'x'",
                              "detail": {"field": "kind", "allowed": ["a", "b"]}}}


def test_invalid_param_with_an_expectation_keeps_extra_detail_and_status():
    exc = invalid_param("budget", math.inf, expected="a finite number > 0", detail={"unit": "samples"},
                        status_code=422)
    assert isinstance(exc, ApplicationError) and exc.field == "budget"
    status, body = _rendered(exc)
    assert status == 422
    assert body["error"] == {"code": "validation_error", "message": "budget must be a finite number > 0; got inf",
                             "detail": {"field": "budget", "unit": "samples"}}


def test_field_lands_in_detail_and_wins_over_a_field_given_there():
    exc = ApplicationError("invalid_cron", "bad", field="cron", detail={"part": "hour", "field": "other"})
    assert exc.field == "cron" and exc.detail == {"field": "cron", "part": "hour"}
    assert ApplicationError("x", "y").detail == {} and ApplicationError("x", "y").field is None


@pytest.mark.parametrize("detail", [
    {"budget": ["A valid number is required."]},
    {"budget": "must be > 0", "unit": ["unknown"]},
    ["give exactly one of corpus or benchmark"],
    "a bare message",
    {"template": {"kind": ["This field is required."]}},
])
def test_validation_error_renders_exactly_as_drf_validation_error(detail):
    status, body = _rendered(validation_error(detail))
    assert (status, body) == _rendered(serializers.ValidationError(detail))
    assert status == 400 and body["error"]["code"] == "validation_error"
    assert set(body["error"]["detail"]) == {"fields"}


def test_validation_error_message_and_shape():
    status, body = _rendered(validation_error({"budget": ["must be > 0"], "unit": ["unknown"]}))
    assert status == 400
    assert body == {"error": {"code": "validation_error", "message": "budget: must be > 0; unit: unknown",
                              "detail": {"fields": {"budget": ["must be > 0"], "unit": ["unknown"]}}}}


def test_validated_returns_data_or_raises_the_application_error():
    assert validated(_Budget(data={"budget": "2.5"})) == {"budget": 2.5, "unit": "samples"}
    with pytest.raises(ApplicationError) as caught:
        validated(_Budget(data={"unit": "flops"}))
    assert caught.value.code == "validation_error" and caught.value.status_code == 400
    assert set(caught.value.detail["fields"]) == {"budget", "unit"}
    assert caught.value.message.startswith("budget: This field is required.; unit: ")


def test_a_service_error_with_a_field_reaches_the_client_through_the_api(client_a):
    unknown_kind = client_a.post("/api/v1/schedules/", {"interval_seconds": 3600,
                                                        "job_template": {"kind": "nonsense", "params": {}}},
                                 format="json")
    assert unknown_kind.status_code == 400
    error = error_of(unknown_kind)
    assert error["code"] == "unknown_kind" and error["detail"]["field"] == "kind"
    assert error["message"] == f"kind must be one of {error['detail']['allowed']}; got 'nonsense'"

    interval = client_a.post("/api/v1/schedules/", {"interval_seconds": 10 ** 9,
                                                    "job_template": {"kind": "embed", "params": {}}}, format="json")
    assert interval.status_code == 400
    error = error_of(interval)
    assert error["code"] == "invalid_interval" and error["detail"]["field"] == "interval_seconds"
    assert error["message"].startswith("interval_seconds must be between ") and error["message"].endswith(
        f"; got {10 ** 9!r}")
