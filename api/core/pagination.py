from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable newest-first pages: ``?cursor=...``, ``page_size`` up to 500."""

    ordering = "-created_at"
    page_size_query_param = "page_size"
    max_page_size = 500
