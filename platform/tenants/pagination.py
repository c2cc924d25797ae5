from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """Every list is paginated: ?page=N&page_size=M (at most 500).

    A page or page size that is not a whole number in range is a 400 naming
    the parameter, not silently the default (the schema says integer).
    """

    page_size_query_param = "page_size"
    max_page_size = 500

    def _whole_number(self, request, name: str, message: str) -> int | None:
        raw = request.query_params.getlist(name)
        if not raw:
            return None
        value = raw[-1]
        if len(raw) == 1 and value.isascii() and value.isdigit() and int(value) > 0:
            return int(value)
        raise ValidationError({name: [message]})

    def get_page_size(self, request):
        message = _("A whole number from 1 to %(maximum)s.") % {"maximum": self.max_page_size}
        size = self._whole_number(request, self.page_size_query_param, message)
        if size is not None and size > self.max_page_size:
            raise ValidationError({self.page_size_query_param: [message]})
        return size or self.page_size

    def paginate_queryset(self, queryset, request, view=None):
        if request.query_params.get(self.page_query_param) not in self.last_page_strings:
            self._whole_number(request, self.page_query_param, _("A whole number from 1 on."))
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters
