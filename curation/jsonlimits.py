"""JSON text with a bounded nesting depth.

``json.loads`` recurses once per array or object level, so a text of 10^5 opening
brackets raises ``RecursionError`` (in a web process: a 500) before any validation sees
the value. :func:`loads` checks the depth first, in one pass over the brackets outside
strings, and refuses a text nested deeper than ``max_depth`` with :class:`JSONTooDeep`
(a ``ValueError``). The request-body parser (``api/core/parsers.py``) and the upload
readers (:mod:`curation.ingest`, :mod:`curation.predictions`) use it.

>>> loads('{"a": [1, {"b": "[[["}]}', max_depth=3)
{'a': [1, {'b': '[[['}]}
>>> depth('{"a": [1, {"b": "[[["}]}')
3
>>> loads("[[[[]]]]", max_depth=3)
Traceback (most recent call last):
...
curation.jsonlimits.JSONTooDeep: JSON nested deeper than 3 levels (at character 4)
"""
from __future__ import annotations

import json
import re

MAX_DEPTH = 64

# A string (skipped whole, escapes included) or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


class JSONTooDeep(ValueError):
    """A JSON text nested deeper than ``limit``; ``position`` is the 1-based character that passed it."""

    def __init__(self, limit: int, position: int):
        super().__init__(f"JSON nested deeper than {limit} levels (at character {position})")
        self.limit, self.position = limit, position


def depth(text: str, *, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``text`` (brackets inside strings do not count).

    With ``stop_above``, raises :class:`JSONTooDeep` as soon as the depth passes it.
    """
    level = deepest = 0
    for match in _TOKENS.finditer(text):
        char = text[match.start()]
        if char in "[{":
            level += 1
            if level > deepest:
                deepest = level
                if stop_above is not None and level > stop_above:
                    raise JSONTooDeep(stop_above, match.start() + 1)
        elif char in "]}":
            level -= 1
    return deepest


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`JSONTooDeep` if ``text`` nests deeper than ``max_depth``.

    A text with no more opening brackets than the limit cannot pass it, so the usual line
    or body costs two ``str.count`` calls; only the rest is scanned.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth(text, stop_above=max_depth)


def loads(text: str, *, max_depth: int = MAX_DEPTH, **options):
    """``json.loads(text, **options)`` after :func:`check_depth`."""
    check_depth(text, max_depth)
    return json.loads(text, **options)
