"""One application error type and one renderer for every error the API returns.

Shape (DESIGN.md section 4)::

    {"error": {"code": "not_found", "message": "...", "detail": {...}}}
"""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A failure the caller can act on; services raise it, the handler renders it."""

    def __init__(self, code: str, message: str, *, detail: dict | None = None, status_code: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail or {}
        self.status_code = status_code


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


def _validation_message(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, errors in detail.items():
            first = errors[0] if isinstance(errors, list) and errors else errors
            if isinstance(first, dict):
                first = _validation_message(first)
            parts.append(f"{field}: {first}")
        return "; ".join(parts) or "invalid input"
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF exception handler: every error, including unhandled ones, in the one shape."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.detail), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):  # e.g. a malformed id in a query filter
        exc = exceptions.ValidationError(exc.messages)
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            error_body("validation_error", _validation_message(exc.detail), {"fields": exc.detail}),
            status=status.HTTP_400_BAD_REQUEST,
        )
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


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"no resource at {request.path}"), status=404)


def json_server_error(request) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "an internal error occurred; it has been logged."), status=500)
