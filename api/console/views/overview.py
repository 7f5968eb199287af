"""The tenant's front page."""
from __future__ import annotations

from api.console import selectors
from api.console.base import ConsoleView


class OverviewView(ConsoleView):
    template_name = "console/overview.html"
    section = "overview"

    def get(self, request):
        return self.page(selectors.overview(tenant=self.tenant))
