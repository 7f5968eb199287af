from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "api.modeling"
    label = "modeling"
