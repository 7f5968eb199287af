"""The OpenAPI schema says what the API does: drf-spectacular's AutoSchema and one postprocessing hook.

* Only ``list`` actions and the extra actions that name their own ``pagination_class``
  (``@action(pagination_class=...)``, e.g. a corpus's contamination) are paginated (DRF
  paginates in ``ListModelMixin.list``; such an action calls the paginator itself), so
  only they are documented with ``{next, previous, results}`` and the ``cursor`` /
  ``page_size`` parameters; other many-valued answers are bare arrays.
* A number field that is exclusive at its minimum (``StrictFloatField(exclusive_min=True)``,
  e.g. a budget: > 0) says ``exclusiveMinimum``.
* A string field says it holds no NUL (DRF refuses one); a POST's body is required.
* A list's ``?field=value`` filters (a view's ``query_filters``) are documented from
  the model field they filter.
* :func:`document_errors` (the hook) documents the one error shape
  (``components/schemas/Error``) under every status the API answers with, on every
  operation (415 on those that take a body), and marks optional query parameters as accepting an empty value (DRF
  reads ``?x=`` as "x not given").
"""
from __future__ import annotations

from django.db import models
from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

#: A string without NUL characters: what every CharField accepts (PostgreSQL text cannot hold one);
#: one that may not be blank also holds a character other than whitespace (DRF trims it first).
NO_NUL = "^[^\\u0000]*$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"

#: ``{"error": {"code", "message", "detail"}}`` (DESIGN.md section 4, api/core/errors.py).
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error the API returns has this shape.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "stable and machine-readable, e.g. validation_error, "
                                                          "not_found, rate_limited"},
                "message": {"type": "string", "description": "what went wrong and what is accepted, for people"},
                "detail": {"type": "object", "additionalProperties": {},
                           "description": "more about it: the field at fault, the allowed values, the limit..."},
            },
            "required": ["code", "message", "detail"],
        }
    },
    "required": ["error"],
}

_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 0},
                                "description": "seconds to wait before trying again"}}

#: Status -> (component name, description, headers) of the error responses every operation documents.
ERROR_RESPONSES: dict[int, tuple[str, str, dict]] = {
    400: ("BadRequest", "The request is invalid: a parameter or the body does not match what the operation "
          "accepts (validation_error, with the fields at fault), or breaks a rule of its content (a named code).",
          {}),
    401: ("Unauthenticated", "No API key, or an unknown or revoked one: 'Authorization: Bearer <api key>'.",
          {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}),
    404: ("NotFound", "No such resource for this tenant (another tenant's object is not found either), or an "
          "object the request names does not exist.", {}),
    409: ("Conflict", "The request conflicts with the resource's state (e.g. cancelling a finished job).", {}),
    413: ("PayloadTooLarge", "The body or an uploaded file is over its size limit.", {}),
    429: ("RateLimited", "Too many requests for this key, or a quota reached (concurrent jobs).", _RETRY_AFTER),
    503: ("Unavailable", "A service the API depends on is unavailable; retry later.", _RETRY_AFTER),
}
#: Documented on the operations that take a body: its content type is not the one the operation reads.
UNSUPPORTED_MEDIA_TYPE = (415, "UnsupportedMediaType", "The body is not of the documented content type "
                          "(application/json; multipart/form-data for uploads).", {})


def _error_response(description: str, headers: dict) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if headers:
        response["headers"] = headers
    return response


def document_errors(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: the error responses and empty optional query parameters."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    responses = components.setdefault("responses", {})
    statuses = {**ERROR_RESPONSES, UNSUPPORTED_MEDIA_TYPE[0]: UNSUPPORTED_MEDIA_TYPE[1:]}
    for name, description, headers in statuses.values():
        responses[name] = _error_response(description, headers)
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if operation.get("requestBody") and operation is path.get("post"):
                operation["requestBody"]["required"] = True  # every POST body here is read (a 400 without one)
            for status, (name, _, _) in statuses.items():
                if status in ERROR_RESPONSES or "requestBody" in operation:
                    operation["responses"].setdefault(str(status), {"$ref": f"#/components/responses/{name}"})
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result


def _filter_type(field: models.Field):
    if isinstance(field, (models.ForeignKey, models.UUIDField)):
        return OpenApiTypes.UUID
    if isinstance(field, models.BooleanField):
        return OpenApiTypes.BOOL
    return OpenApiTypes.STR


class AutoSchema(openapi.AutoSchema):
    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)  # minimum, maximum (and drops exclusiveMinimum)
        if isinstance(field, serializers.CharField) and schema.get("type") == "string" and "pattern" not in schema:
            # DRF's CharField refuses NUL (ProhibitNullCharactersValidator), and trims before the blank check
            schema["pattern"] = NO_NUL if field.allow_blank or not field.trim_whitespace else NOT_BLANK
        if getattr(field, "exclusive_min", False):  # StrictFloatField(exclusive_min=True): value > minimum
            schema["exclusiveMinimum"] = True  # OpenAPI 3.0: a flag on ``minimum``

    def _get_paginator(self):
        action = getattr(self.view, "action", None)
        declared = getattr(getattr(self.view, action or "", None), "kwargs", {})
        if action != "list" and "pagination_class" not in declared:
            return None
        return super()._get_paginator()

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if getattr(self.view, "action", None) == "list":
            for name in getattr(self.view, "query_filters", ()):
                field = self.view.model._meta.get_field(name)
                described = f"only those whose {name} is this"
                if field.choices:
                    described += f" (one of {', '.join(str(value) for value, _ in field.choices)})"
                parameters.append(OpenApiParameter(name, _filter_type(field), OpenApiParameter.QUERY,
                                                   description=described))
        return parameters
