from django.contrib import admin

from api.schedules.models import Schedule, ScheduleFiring


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "job_kind", "cron", "interval_seconds", "enabled", "last_fired_at"]
    list_filter = ["enabled", "tenant"]
    readonly_fields = ["periodic_task", "last_fired_at", "last_job"]

    # Schedules change through the API or the console, which keep beat's PeriodicTask in step.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ScheduleFiring)
class ScheduleFiringAdmin(admin.ModelAdmin):
    list_display = ["schedule", "tenant", "fired_at", "outcome", "job", "reason"]
    list_filter = ["outcome", "tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
