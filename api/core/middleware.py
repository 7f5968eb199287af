"""Response headers every page carries: the Content-Security-Policy.

The console escapes by construction (templates autoescape, JSON reaches a page only
through ``json_script``, SVG text through ``html.escape``); the policy is the second
line: no inline script, no inline style, nothing from another origin, so a value that
slipped past escaping still cannot run. ``CONTENT_SECURITY_POLICY`` overrides the
default; ``CONTENT_SECURITY_POLICY_PATHS`` gives a looser policy to path prefixes whose
third-party pages need it (Swagger UI sets inline styles from its script).
"""
from __future__ import annotations

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    header = "Content-Security-Policy"

    def __init__(self, get_response):
        self.get_response = get_response
        self.default = settings.CONTENT_SECURITY_POLICY
        self.by_prefix = sorted(settings.CONTENT_SECURITY_POLICY_PATHS.items(), key=lambda kv: -len(kv[0]))

    def __call__(self, request):
        response = self.get_response(request)
        if self.header not in response:
            policy = next((p for prefix, p in self.by_prefix if request.path.startswith(prefix)), self.default)
            response[self.header] = policy
        return response
