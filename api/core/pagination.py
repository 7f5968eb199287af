from rest_framework import pagination

from api.core.errors import invalid_param


class CursorPagination(pagination.CursorPagination):
    """Stable newest-first pages: ``?cursor=...``, ``page_size`` from 1 to 500.

    A ``page_size`` that is not such an integer is a 400 naming it (DRF would silently
    use the default); an empty one means the default, as for every optional query parameter.
    """

    ordering = "-created_at"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        given = request.query_params.get(self.page_size_query_param, "")
        if given == "":
            return self.page_size
        try:
            size = int(given)
        except ValueError:
            size = None
        if size is None or not 1 <= size <= self.max_page_size:
            raise invalid_param(self.page_size_query_param, given,
                                expected=f"an integer from 1 to {self.max_page_size}")
        return size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
        return parameters
