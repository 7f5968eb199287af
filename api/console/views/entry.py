"""Entry: login, logout, the tenant picker, and the console's 404 page."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View

from api.console.access import console_tenant, console_tenants
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


class HomeView(View):
    """Pick a tenant: ``?tenant=<id>`` switches, a single tenant opens directly."""

    def get(self, request):
        if not request.user.is_authenticated:
            return auth_views.redirect_to_login(request.get_full_path())
        wanted = request.GET.get("tenant")
        if wanted:
            try:
                tenant = console_tenant(request.user, wanted)
            except Http404:
                return not_found(request)
            return redirect("console:overview", tenant.pk)
        tenants = console_tenants(request.user)
        if len(tenants) == 1 and not request.user.is_staff:
            return redirect("console:overview", tenants[0].pk)
        return render(request, "console/picker.html", {"tenants": tenants, "section": ""})


def page_not_found(request, path=""):
    return not_found(request)
