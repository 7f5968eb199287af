"""API keys: list, issue (the secret is shown once), revoke."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect

from api.console.base import ConsoleView, PostOnlyView
from api.console.forms import ApiKeyForm
from api.tenancy import services as tenancy_services
from api.tenancy.models import ApiKey
from api.tenancy.selectors import api_key_list


class ApiKeyListView(ConsoleView):
    template_name = "console/key_list.html"
    section = "keys"

    def get(self, request):
        return self.page({"keys": api_key_list(tenant=self.tenant), "form": ApiKeyForm()})


class ApiKeyCreateView(PostOnlyView):
    template_name = "console/key_created.html"
    section = "keys"

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return redirect("console:keys", self.tenant.pk)
        issued = tenancy_services.api_key_create(tenant=self.tenant, name=form.cleaned_data["name"])
        response = self.page({"key": issued.api_key, "secret": issued.secret,
                              "api_base": request.build_absolute_uri("/api/v1/")})
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyRevokeView(PostOnlyView):
    def post(self, request, pk):
        key = self.scoped(ApiKey, pk)
        tenancy_services.api_key_revoke(tenant=self.tenant, key_id=key.pk)
        messages.success(request, f"Revoked key cur_{key.prefix}_…; calls with it now get 401.")
        return redirect("console:keys", self.tenant.pk)

