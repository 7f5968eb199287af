from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "api.schedules"
    label = "schedules"
