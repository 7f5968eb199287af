from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from api.core.embedded import EmbeddedStack, StackAlreadyRunning


class Command(BaseCommand):
    help = "Run the embedded stack: Redis (unless REDIS_URL is set), a Celery worker, beat and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=None, help="worker processes (default: up to 2)")
        parser.add_argument("--state-dir", type=Path, default=None,
                            help="the stack's own directory for its Redis, logs and pid file (default: "
                                 "$VAR_DIR/stacks/<digest of the database and the artifact root>)")

    def handle(self, *args, host: str, port: int, concurrency: int | None, state_dir: Path | None, **options):
        stack = EmbeddedStack(host=host, port=port, concurrency=concurrency, state_dir=state_dir)
        stack.handle_signals()
        try:
            stack.start()
        except StackAlreadyRunning as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"State      {stack.state_dir} (Redis, logs in log/, pid file)")
        self.stdout.write(f"Console    {stack.base_url}/console/  (a login: python manage.py create_console_user "
                          "NAME --tenant TENANT)")
        self.stdout.write(f"API        {stack.base_url}/api/v1/")
        self.stdout.write(f"API docs   {stack.base_url}/api/docs/")
        self.stdout.write(f"Admin      {stack.base_url}/admin/  (staff: python manage.py createsuperuser)")
        self.stdout.write("Serving; press Ctrl-C to stop.")
        stack.serve_until_interrupted()
        self.stdout.write("Stopped the web server, the worker, beat and Redis.")
