from django.core.management.base import BaseCommand

from api.core.embedded import EmbeddedStack


class Command(BaseCommand):
    help = "Run the embedded stack: Redis (unless REDIS_URL is set), a Celery worker, beat and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=None, help="worker processes (default: up to 2)")

    def handle(self, *args, host: str, port: int, concurrency: int | None, **options):
        stack = EmbeddedStack(host=host, port=port, concurrency=concurrency)
        stack.start()
        self.stdout.write(f"Console    {stack.base_url}/console/  (a login: python manage.py create_console_user "
                          "NAME --tenant TENANT)")
        self.stdout.write(f"API        {stack.base_url}/api/v1/")
        self.stdout.write(f"API docs   {stack.base_url}/api/docs/")
        self.stdout.write(f"Admin      {stack.base_url}/admin/  (staff: python manage.py createsuperuser)")
        self.stdout.write("Serving; press Ctrl-C to stop.")
        stack.serve_until_interrupted()
        self.stdout.write("Stopped the web server, the worker, beat and Redis.")
