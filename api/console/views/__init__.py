"""Console pages, one module per section of the navigation.

Each view reads through selectors (the console's own compositions in
:mod:`api.console.selectors`, else the apps' selectors) and writes through the same
services the REST API calls, so the console and the API cannot disagree.
"""
from api.console.base import PostOnlyView

__all__ = ["PostOnlyView"]
