from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "api.tenancy"
    label = "tenancy"
