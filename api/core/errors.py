"""One application error type and one renderer for every error the API returns.

Shape (DESIGN.md section 4)::

    {"error": {"code": "not_found", "message": "...", "detail": {...}}}

Services raise only :class:`ApplicationError`: :func:`invalid_param` for one bad
parameter (named, with what it accepts and what was given), :func:`validated` to turn a serializer's errors into :func:`validation_error`, which renders
exactly as DRF's own ``ValidationError`` does.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import (DisallowedHost, PermissionDenied, RequestDataTooBig, TooManyFieldsSent,
                                    TooManyFilesSent)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A failure the caller can act on; services raise it, the handler renders it.

    ``field`` names the input at fault (``"cron"``, ``"params.corpus"``); it is also
    ``detail["field"]``, where the rendered error carries it. ``retry_after`` (seconds) says
    when trying again can succeed (a 429 or a 503): it is ``detail["retry_after_seconds"]``
    and the response's ``Retry-After`` header, as for DRF's own throttling.
    """

    def __init__(self, code: str, message: str, *, detail: dict | None = None, status_code: int = 400,
                 field: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        detail = dict(detail or {})
        if field is not None:
            detail = {"field": field, **{key: value for key, value in detail.items() if key != "field"}}
        if retry_after is not None:
            retry_after = max(1, int(retry_after))
            detail["retry_after_seconds"] = retry_after
        self.detail = detail
        self.field = detail.get("field")
        self.status_code = status_code
        self.retry_after = retry_after


def error_body(code: str, message: str, detail: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


_DRF_CODES = {
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.AuthenticationFailed: "unauthenticated",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "parse_error",
    exceptions.PermissionDenied: "permission_denied",
}


def validation_message(detail) -> str:
    """One line for a serializer's errors: ``"name: This field is required.; budget: ..."``."""
    if isinstance(detail, dict):
        parts = []
        for field, errors in detail.items():
            first = errors[0] if isinstance(errors, list) and errors else errors
            if isinstance(first, dict):
                first = validation_message(first)
            parts.append(f"{field}: {first}")
        return "; ".join(parts) or "invalid input"
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail)
    return str(detail)


def validation_error(detail) -> ApplicationError:
    """Input errors (a serializer's ``errors``, or anything ``serializers.ValidationError`` takes)
    as the one application error, rendered as a DRF validation error always was."""
    detail = exceptions.ValidationError(detail).detail
    return ApplicationError("validation_error", validation_message(detail), detail={"fields": detail})


def validated(serializer: serializers.Serializer) -> dict:
    """``serializer.validated_data``, or :func:`validation_error` of its errors (never DRF's exception)."""
    if not serializer.is_valid():
        raise validation_error(serializer.errors)
    return serializer.validated_data


def invalid_param(name: str, given, *, allowed=None, expected: str | None = None, code: str = "validation_error",
                  detail: dict | None = None, status_code: int = 400) -> ApplicationError:
    """A bad parameter in scikit-learn's words: the parameter, what it accepts, and what was given.

    >>> invalid_param("kind", "x", allowed=["a", "b"]).message
    "kind must be one of ['a', 'b']; got 'x'"
    >>> invalid_param("budget", float("inf"), expected="a finite number > 0").message
    'budget must be a finite number > 0; got inf'

    ``allowed`` (listed in the message and in ``detail["allowed"]``) or ``expected`` (a
    phrase) says what is accepted; ``field`` is ``name``.
    """
    if allowed is not None:
        allowed = list(allowed)
        accepts, detail = f"one of {allowed!r}", {**(detail or {}), "allowed": allowed}
    else:
        accepts = expected or "valid"
    return ApplicationError(code, f"{name} must be {accepts}; got {given!r}", detail=detail, field=name,
                            status_code=status_code)


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF exception handler: every error, including unhandled ones, in the one shape."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):  # e.g. a malformed id in a query filter
        exc = exceptions.ValidationError(exc.messages)
    elif isinstance(exc, RequestDataTooBig):  # Django refuses to read the body (request.data)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = ApplicationError("request_too_large", f"the request body is over the limit of {limit} bytes (files "
                               "in a multipart upload do not count); send less, or upload data as a file",
                               detail={"max_bytes": limit}, status_code=413)
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = ApplicationError("too_many_fields", str(exc), status_code=400)
    if isinstance(exc, exceptions.ValidationError):
        exc = validation_error(exc.detail)
    if isinstance(exc, ApplicationError):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(error_body(exc.code, exc.message, exc.detail), status=exc.status_code, headers=headers)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
        detail = {"retry_after_seconds": exc.wait} if isinstance(exc, exceptions.Throttled) and exc.wait else {}
        headers = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        return Response(error_body(code, str(exc.detail), detail), status=exc.status_code, headers=headers)
    view = context.get("view")
    logger.exception("unhandled error in %s", type(view).__name__ if view else "request", exc_info=exc)
    return Response(
        error_body("internal_error", "an internal error occurred; it has been logged. Retry, or contact the operator."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def bad_request(request, exception=None):
    """``handler400``: what Django answers for a request it refuses before any view runs
    (a ``Host`` not in ``ALLOWED_HOSTS``, any other ``SuspiciousOperation``). Under ``/api/`` it is
    the error shape; elsewhere (console, admin) Django's own page. It must not call
    ``request.get_host()``: for a disallowed host that raises again."""
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        body = error_body("disallowed_host", "the Host header names a host this service does not answer for "
                          "(ALLOWED_HOSTS)")
    else:
        body = error_body("bad_request", "the request was refused as malformed or suspicious")
    return JsonResponse(body, status=400)


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"no resource at {request.path}"), status=404)


def json_server_error(request) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "an internal error occurred; it has been logged."), status=500)
