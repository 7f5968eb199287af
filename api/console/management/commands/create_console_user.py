"""``manage.py create_console_user alice --tenant demo``: a console login for a tenant's member."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from api.tenancy.models import Membership, Tenant


class Command(BaseCommand):
    help = "Create (or update) a console user and make it a member of tenants; prints a generated password once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--tenant", action="append", default=[], help="tenant name (repeatable)")
        parser.add_argument("--password", help="default: a generated one, printed once")
        parser.add_argument("--staff", action="store_true", help="staff: sees every tenant and the admin")

    @transaction.atomic
    def handle(self, *args, username: str, tenant: list[str], password: str | None, staff: bool, **options):
        tenants = []
        for name in tenant:
            found = Tenant.objects.filter(name=name).first()
            if found is None:
                known = ", ".join(Tenant.objects.order_by("name").values_list("name", flat=True)) or "none"
                raise CommandError(f"no tenant named {name!r} (tenants: {known})")
            tenants.append(found)
        if not tenants and not staff:
            raise CommandError("give --tenant NAME (or --staff for a user who sees every tenant)")
        user, created = get_user_model().objects.get_or_create(username=username)
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        user.set_password(password)
        if staff:
            user.is_staff = user.is_superuser = True
        user.save()
        for found in tenants:
            Membership.objects.get_or_create(user=user, tenant=found)
        self.stdout.write(f"{'Created' if created else 'Updated'} console user {username!r}"
                          + (f", member of {', '.join(t.name for t in tenants)}" if tenants else "")
                          + (" (staff)" if staff else ""))
        if generated:
            self.stdout.write(f"password: {password}   (shown once)")
