"""The one base view of the console: login, the tenant from the URL, scoped lookups.

Like :class:`api.core.views.TenantScopedViewSet` for the API, this class owns
``dispatch``: a subclass cannot skip the login check or the tenant check by
accident, and every object it loads goes through :meth:`ConsoleView.scoped`, which
filters by the URL's tenant (another tenant's object is a 404 page).
"""
from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.db import models
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.views import View

from api.console.access import console_tenant, console_tenants, remember_tenant
from api.core.errors import ApplicationError


def not_found(request, message: str = "") -> HttpResponse:
    return render(request, "console/404.html", {"message": message}, status=404)


def page_error(exc: ApplicationError) -> dict:
    """An API error as the page shows it: the same code and message the API returns."""
    return {"code": exc.code, "message": exc.message, "detail": exc.detail}


class ConsoleView(View):
    template_name: str = ""
    #: The navigation entry highlighted on this page.
    section: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "dispatch" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not override dispatch; ConsoleView owns login and tenant checks")

    def dispatch(self, request, *args, tenant_id, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            self.tenant = console_tenant(request.user, tenant_id)
            remember_tenant(request, self.tenant)
            return super().dispatch(request, *args, **kwargs)
        except Http404:
            return not_found(request)

    def scoped(self, model: type[models.Model], pk, **filters) -> models.Model:
        """``model``'s row ``pk`` of this page's tenant, or a 404."""
        obj = model.objects.for_tenant(self.tenant).filter(pk=pk, **filters).first()
        if obj is None:
            raise Http404(f"no such {model.__name__}")
        return obj

    def page(self, context: dict | None = None, *, status: int = 200, template: str | None = None) -> HttpResponse:
        base = {"tenant": self.tenant, "tenants": console_tenants(self.request.user), "section": self.section}
        return render(self.request, template or self.template_name, {**base, **(context or {})}, status=status)


class PostOnlyView(ConsoleView):
    """An action (delete, cancel, ...): a GET is answered 405."""

    def get(self, request, *args, **kwargs):
        return HttpResponseNotAllowed(["POST"])
