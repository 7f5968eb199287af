from django.core.management.base import BaseCommand, CommandError

from api.core.errors import ApplicationError
from api.tenancy.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant and print its first API key (shown once; only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        try:
            issued = tenant_create(name=name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"tenant {name} ({issued.api_key.tenant_id})")
        self.stdout.write(f"API key (shown once, store it now): {issued.secret}")
