from django.contrib import admin

from api.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "tenant", "documents", "shard_count", "stored_bytes", "created_at"]
    list_filter = ["kind", "tenant"]
