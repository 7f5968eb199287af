"""The API's JSON parser: DRF's, with a nesting limit.

``json.loads`` recurses once per level, so a body of 10^5 opening brackets is a
``RecursionError`` (a 500) in DRF's parser. This one checks the depth first
(:mod:`curation.jsonlimits`) and refuses a body nested deeper than ``JSON_MAX_DEPTH``
(default 64) with a 400 ``parse_error`` naming the limit. It is the first of
``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``; a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
never reaches it (Django refuses to read it; :func:`api.core.errors.exception_handler`
renders that as a 413).
"""
from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from api.core.errors import ApplicationError
from curation.jsonlimits import JSONTooDeep, check_depth


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
            check_depth(text, settings.JSON_MAX_DEPTH)
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except JSONTooDeep as exc:
            raise ApplicationError("parse_error", f"JSON parse error - {exc}; the limit is {exc.limit} levels",
                                   detail={"max_depth": exc.limit}) from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included, as in DRF's parser
            raise ParseError(f"JSON parse error - {exc}") from None
