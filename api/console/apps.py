from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "api.console"
    label = "console"
    verbose_name = "Console"
