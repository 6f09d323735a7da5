"""django-filter that refuses unknown query parameters and invalid values with a 400 naming them."""

import django_filters as filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.filters import OrderingFilter

from access.errors import FieldError

# Parameters every list understands besides its filters.
COMMON_PARAMETERS = {"cursor", "limit", "ordering", "search", "format"}


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        known = set(COMMON_PARAMETERS) | set(getattr(view, "extra_query_parameters", ()))
        if filterset_class is not None:
            known |= set(filterset_class.base_filters)
        if getattr(view, "action", None) in (None, "list"):
            for name in request.query_params:
                if name not in known:
                    raise FieldError(name, f"is not a filter of this list; use any of {', '.join(sorted(known))}")
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            field, messages = next(iter(filterset.errors.items()))
            raise FieldError(field, str(messages[0]))
        return filterset.qs


class StrictOrderingFilter(OrderingFilter):
    """Ordering by a field the view does not offer is refused, not silently ignored."""

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params:
            fields = [param.strip() for param in params.split(",")]
            valid = {name for name, _ in self.get_valid_fields(queryset, view, {"request": request})}
            unknown = [field for field in fields if field.lstrip("-") not in valid]
            if unknown:
                raise FieldError(
                    "ordering", f"cannot order by {', '.join(unknown)}; use any of {', '.join(sorted(valid))}"
                )
        return super().get_ordering(request, queryset, view)


class StrictBooleanField(forms.NullBooleanField):
    """true/false (or 1/0); anything else is an error rather than "no filter"."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError(f"must be true or false, not {str(value)[:40]!r}")


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField
