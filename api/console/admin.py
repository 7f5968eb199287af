"""Staff admin for console access: memberships on their own and on each user's page."""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from api.tenancy.models import Membership

User = get_user_model()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["user__username", "tenant__name"]
    autocomplete_fields = ["tenant"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    verbose_name = "tenant membership"
    verbose_name_plural = "tenant memberships (console access)"


class ConsoleUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, MembershipInline]
    list_display = [*UserAdmin.list_display, "is_active"]


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, ConsoleUserAdmin)
