import uuid

from django.core.management.base import BaseCommand, CommandError

from api.tenancy.models import Tenant
from api.tenancy.services import api_key_create


class Command(BaseCommand):
    help = "Issue another API key for a tenant (by name or id) and print it once."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant name or id")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, tenant: str, name: str, **options):
        found = Tenant.objects.filter(name=tenant).first()
        if found is None:
            try:
                found = Tenant.objects.filter(pk=uuid.UUID(tenant)).first()
            except ValueError:
                found = None
        if found is None:
            raise CommandError(f"no tenant named or with id {tenant!r}; create one with create_tenant")
        issued = api_key_create(tenant=found, name=name)
        self.stdout.write(f"API key for {found.name} (shown once, store it now): {issued.secret}")
