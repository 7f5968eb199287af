"""Bearer API-key authentication, the tenant permission and the per-key throttle."""
from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from api.core.lockout import client_address
from api.tenancy.models import ApiKey, Tenant
from api.tenancy.services import api_key_verify


@dataclass(frozen=True)
class TenantPrincipal:
    """``request.user`` for API calls: the tenant acting through one key."""

    tenant: Tenant
    api_key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, presented = header.partition(" ")
        if scheme != self.keyword or not presented.strip():
            raise exceptions.AuthenticationFailed("use the header 'Authorization: Bearer <api key>'")
        key = api_key_verify(presented=presented.strip(), address=client_address(request))
        if key is None:
            raise exceptions.AuthenticationFailed("the API key is unknown or revoked")
        return TenantPrincipal(tenant=key.tenant, api_key=key), key

    def authenticate_header(self, request) -> str:
        return self.keyword


class IsTenantMember(permissions.BasePermission):
    """Every API view needs a tenant key; staff tools go through the admin instead."""

    message = "an API key is required: 'Authorization: Bearer <api key>'"

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            raise exceptions.NotAuthenticated(self.message)
        return True


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """``API_RATE_LIMIT`` requests per key, counted in the default cache. While Redis is down
    the cache counts in each web process's memory (:mod:`api.core.cache` says why that, not
    failing open), so reads keep answering and the limit still holds, per process."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the bearer key in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "cur_<prefix>_<secret>"}
