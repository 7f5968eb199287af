from django.contrib import admin

from api.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "tenant", "status", "stage", "shards_done", "shards_total", "created_at"]
    list_filter = ["status", "kind", "tenant"]
