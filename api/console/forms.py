"""Console forms: they render the inputs; validation goes through the API's own
serializers and services, so a form shows the same errors, word for word, as the API."""
from __future__ import annotations

import json

from django import forms

from api.core.errors import ApplicationError
from api.jobs.kinds import KINDS
from curation.ingest import FORMATS


class UploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV, TSV or Parquet; optionally gzip.")
    name = forms.CharField(required=False, max_length=200, help_text="Default: the file name.")
    format = forms.ChoiceField(required=False, choices=[("", "from the file name")] + [(f, f) for f in FORMATS])
    text_field = forms.CharField(required=False, initial="text", help_text="Default: text.")
    id_field = forms.CharField(required=False, help_text="Default: id when present, else generated ids.")
    source_field = forms.CharField(required=False, help_text="Default: source when present.")
    shard_size = forms.IntegerField(required=False, help_text="Documents per shard (default from the server).")


def kind_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(KINDS)]


class JobForm(forms.Form):
    kind = forms.ChoiceField(choices=kind_choices)
    params = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
                             initial="{}", help_text='JSON object, e.g. {"corpus": "<id>", "embedder": "hashing"}.')


class ScheduleForm(forms.Form):
    name = forms.CharField(required=False, max_length=100)
    timing = forms.ChoiceField(choices=[("interval", "every N seconds"), ("cron", "cron expression (UTC)")],
                               widget=forms.RadioSelect, initial="interval")
    interval_seconds = forms.IntegerField(required=False, min_value=1, label="Interval (seconds)")
    cron = forms.CharField(required=False, max_length=100, label="Cron",
                           help_text="minute hour day-of-month month day-of-week, e.g. 0 3 * * * (03:00 UTC daily)")
    kind = forms.ChoiceField(choices=kind_choices, label="Job kind")
    params = forms.CharField(widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "mono"}),
                             initial="{}", label="Job params", help_text="JSON object, as for a job.")
    enabled = forms.BooleanField(required=False, initial=True)


class ApiKeyForm(forms.Form):
    name = forms.CharField(required=False, max_length=100, help_text="What the key is for, e.g. ci or notebook.")


def parse_params(text: str) -> dict:
    """The JSON object in a params box; an :class:`ApplicationError` on ``params`` with a readable reason otherwise."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ApplicationError("validation_error", f"params is not valid JSON: {exc.msg} (line {exc.lineno}, "
                               f"column {exc.colno})", field="params") from None
    if not isinstance(value, dict):
        raise ApplicationError("validation_error", f"params must be a JSON object {{...}}; got {type(value).__name__}",
                               field="params")
    return value
