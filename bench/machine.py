"""The machine line, now part of :mod:`harness` (kept importable for scripts that still import it here)."""
from harness import cpu_and_ram

__all__ = ["cpu_and_ram"]
