from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "api.datasets"
    label = "datasets"
