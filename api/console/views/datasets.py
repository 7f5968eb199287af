"""Corpora and benchmarks: list, upload, detail (sources, score histograms, contamination, jobs), delete."""
from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect

from api.console import charts, selectors
from api.console.base import ConsoleView, PostOnlyView, page_error
from api.console.forms import UploadForm
from api.core.errors import ApplicationError, validated
from api.datasets import services as dataset_services
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_list, dataset_shards
from api.datasets.serializers import DatasetUploadSerializer
from api.jobs.kinds import KINDS
from curation.ingest import FieldMapping


def fields_read(mapping: dict) -> list[dict]:
    """The text, id and source fields the documents were read from, for the details card.

    ``mapping`` is ``Dataset.field_mapping``: the fields used and which came from the
    defaults; a dataset stored before uploads recorded that has only the names given
    (``None`` for a default), shown as the default rule.
    """
    recorded = "defaulted" in mapping
    defaulted = set(mapping.get("defaulted") or ())
    rows = [{"role": "text", "field": mapping.get("text_field") or "text", "note": ""}]
    for role, key, absent in (("id", "id_field", "not in the file: ids generated (0, 1, 2, ...)"),
                              ("source", "source_field", "not in the file: documents have no source")):
        name = mapping.get(key)
        if name:
            rows.append({"role": role, "field": name, "note": "default" if key in defaulted else "as given"})
        elif recorded:
            rows.append({"role": role, "field": "", "note": absent})
        else:
            rows.append({"role": role, "field": role, "note": "default, when present in the file"})
    return rows


class _DatasetView(ConsoleView):
    """Corpora and benchmarks share pages; the URL's ``plural`` (corpora|benchmarks) picks the kind."""

    kind: str = Dataset.Kind.CORPUS

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.kind = Dataset.Kind.CORPUS if kwargs.get("plural") == "corpora" else Dataset.Kind.BENCHMARK

    @property
    def plural(self) -> str:
        return "corpora" if self.kind == Dataset.Kind.CORPUS else "benchmarks"

    def page(self, context=None, **kwargs):
        return super().page({"kind": self.kind, "plural": self.plural, **(context or {})}, **kwargs)


class DatasetListView(_DatasetView):
    template_name = "console/dataset_list.html"

    def get(self, request, plural):
        paginator = Paginator(dataset_list(tenant=self.tenant, kind=self.kind), 50)
        return self.page({"page_obj": paginator.get_page(request.GET.get("page")), "section": self.plural})


class DatasetUploadView(_DatasetView):
    template_name = "console/dataset_upload.html"

    def get(self, request, plural):
        return self.page({"form": UploadForm(), "section": self.plural})

    def post(self, request, plural):
        form = UploadForm(request.POST, request.FILES)
        # The API's serializer validates, so blank optional inputs count as "not given" like an API call.
        data = {key: value for key, value in request.POST.items() if value.strip() and key != "csrfmiddlewaretoken"}
        if "file" in request.FILES:
            data["file"] = request.FILES["file"]
        try:
            values = validated(DatasetUploadSerializer(data=data))
            dataset = dataset_services.dataset_create(
                tenant=self.tenant, kind=self.kind, upload=values["file"], name=values.get("name", ""),
                mapping=FieldMapping(text_field=values["text_field"], id_field=values.get("id_field"),
                                     source_field=values.get("source_field")),
                declared_format=values.get("format"), shard_size=values.get("shard_size"))
        except ApplicationError as exc:
            return self.page({"form": form, "error": page_error(exc), "section": self.plural}, status=400)
        messages.success(request, f"Uploaded {dataset.name}: {dataset.documents:,} documents in "
                                  f"{dataset.shard_count} shards.")
        return redirect("console:dataset", self.tenant.pk, self.plural, dataset.pk)


class DatasetDetailView(_DatasetView):
    template_name = "console/dataset_detail.html"

    def get(self, request, plural, pk):
        dataset = self.scoped(Dataset, pk, kind=self.kind)
        sources = sorted(dataset.source_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        histograms = [{"data": data, "job": job, "chart": charts.histogram(
            f"{metric} scores ({data['documents']:,} documents)", data["edges"],
            {"kept": data["kept"], "dropped": data["dropped"]}, x_label=metric,
            description=f"Distribution of {metric} scores from job {job.pk}: "
                        f"{data['kept_total']:,} kept of {data['documents']:,}.")}
            for metric, job, data in selectors.score_histograms(dataset=dataset)]
        return self.page({
            "dataset": dataset, "shards": dataset_shards(dataset=dataset), "section": self.plural,
            "sources_chart": charts.bar_chart("Documents per source", sources, value_label="documents",
                                              fmt=lambda v: f"{int(v):,}"),
            "histograms": histograms, "jobs": selectors.dataset_jobs(dataset=dataset),
            "contamination": selectors.contamination_overview(dataset=dataset) if self.kind == Dataset.Kind.CORPUS
            else None,
            "fields_read": fields_read(dataset.field_mapping or {}),
            "job_kinds": sorted(KINDS),
        })


class DatasetDeleteView(_DatasetView, PostOnlyView):
    def post(self, request, plural, pk):
        dataset = self.scoped(Dataset, pk, kind=self.kind)
        dataset_services.dataset_delete(dataset=dataset)
        messages.success(request, f"Deleted {dataset.name} and its artifacts.")
        return redirect("console:datasets", self.tenant.pk, self.plural)
