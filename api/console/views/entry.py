"""Entry: login, logout, the tenant picker, pages typed without a tenant, and the console's 404 page."""
from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib.auth import views as auth_views
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.views import View

from api.console.access import console_tenant, console_tenants, current_tenant, sole_tenant
from api.console.base import not_found, page_error
from api.console.login import login_identities
from api.core import lockout
from api.core.errors import ApplicationError


class LoginView(auth_views.LoginView):
    """Django's login, with the lockout (:mod:`api.console.login`): while the address or the
    username has too many failed logins the page answers 429 saying for how long, and no
    password is checked."""

    template_name = "console/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username") or None
        try:
            lockout.LOGIN.check(**login_identities(request, username))
        except ApplicationError as exc:
            # An unbound form: validating it would try the password.
            form = self.get_form_class()(request, initial={"username": username or ""})
            response = self.render_to_response(self.get_context_data(form=form, lockout=page_error(exc)),
                                               status=429)
            response["Retry-After"] = str(exc.retry_after)
            return response
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    pass


def tenant_page(path: str) -> str | None:
    """``path`` (``jobs/``, ``corpora/<id>/?page=2``: a page below ``/console/<tenant id>/``)
    as a relative URL that names a console page (a missing final slash added), else ``None``."""
    path, _, query = path.partition("?")
    probe = reverse("console:overview", args=[uuid.UUID(int=0)])
    for candidate in (path, path + "/"):
        try:
            match = resolve(probe + candidate)
        except Resolver404:
            continue
        if match.url_name != "not_found" and match.kwargs.get("tenant_id") is not None:
            return candidate + (f"?{query}" if query else "")
    return None


def _open(tenant, page: str | None):
    return redirect(reverse("console:overview", args=[tenant.pk]) + page) if page else redirect(
        "console:overview", tenant.pk)


class HomeView(View):
    """Pick a tenant: ``?tenant=<id>`` switches (to the page ``next`` names, if any), a single
    tenant opens directly."""

    def get(self, request):
        if not request.user.is_authenticated:
            return auth_views.redirect_to_login(request.get_full_path())
        page = tenant_page(request.GET.get("next", ""))
        wanted = request.GET.get("tenant")
        if wanted:
            try:
                tenant = console_tenant(request.user, wanted)
            except Http404:
                return not_found(request)
            return _open(tenant, page)
        only = sole_tenant(request.user)
        if only is not None:
            return _open(only, page)
        tenants = console_tenants(request.user)
        choices = [(t, f"?{urlencode({'tenant': t.pk, 'next': page})}" if page else
                    reverse("console:overview", args=[t.pk])) for t in tenants]
        return render(request, "console/picker.html", {"tenants": tenants, "choices": choices, "next": page,
                                                       "section": ""})


class SectionRedirectView(View):
    """A page typed without its tenant (``/console/jobs/``, ``/console/corpora/<id>/``): the
    same page of the current tenant (the one last opened, or the only one), or the picker,
    which then opens it. The page itself still checks its tenant and objects."""

    def get(self, request, path: str):
        if not request.user.is_authenticated:
            return auth_views.redirect_to_login(request.get_full_path())
        query = request.META.get("QUERY_STRING", "")
        page = tenant_page(path + (f"?{query}" if query else ""))
        if page is None:
            return not_found(request)
        tenant = current_tenant(request)
        if tenant is None:
            return redirect(reverse("console:home") + "?" + urlencode({"next": page}))
        return _open(tenant, page)


def page_not_found(request, path=""):
    return not_found(request)
