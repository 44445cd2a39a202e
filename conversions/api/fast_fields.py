"""Output of list rows without DRF's per-field machinery (serializers for I/O only: this
is only how the same output is built).

A ModelSerializer spends tens of microseconds per field per row (field binding,
``get_attribute``, ``to_representation``, translation lookups in ``reverse``); a list of
20 conversions cost several times a /health request (bench/ ``lists``). Here each known
field is one plain read giving what DRF's field would have given (text as str, ISO 8601
datetimes in the current time zone with "Z" for UTC, UUIDs as text); a field a
serializer declares but this module does not know is still rendered by DRF, so a field
added later is never dropped.
"""

from types import SimpleNamespace
from uuid import UUID

from django.urls import get_script_prefix, reverse
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

_MOMENT = serializers.DateTimeField()
_PLACEHOLDER = UUID(int=0)
_PLACEHOLDER_TEXT = str(_PLACEHOLDER)
_routes: dict[tuple[str, str, str], str] = {}


def text(attribute: str):
    def read(instance):
        value = getattr(instance, attribute)
        return None if value is None else str(value)

    return read


def integer(attribute: str):
    def read(instance):
        value = getattr(instance, attribute)
        return None if value is None else int(value)

    return read


def uuid_text(attribute: str):
    def read(instance):
        value = getattr(instance, attribute)
        return None if value is None else str(value)

    return read


def moment(attribute: str):
    def read(instance):
        value = getattr(instance, attribute)
        return None if value is None else _MOMENT.to_representation(value)

    return read


def plain(instance, readers: dict) -> dict:
    return {name: read(instance) for name, read in readers.items()}


# serializer class -> its readable field names, in order, when ``readers`` knows them all
_all_known: dict[type, tuple[str, ...] | None] = {}


def represent(serializer, instance, readers: dict) -> dict:
    """``serializer``'s readable fields of ``instance``: known ones through ``readers``.

    When ``readers`` knows every readable field, the names (in DRF's order) are taken from
    the first instance of the serializer's class and kept: later instances (one per
    request, as a list's child) then never build their DRF fields, which was most of a
    20-row list's Python time after the rows themselves. Serializers here declare a fixed
    ``Meta.fields`` (no per-request ``get_fields``), so the names are the same for every
    instance."""
    names = _all_known.get(type(serializer), ())
    if names:
        return {name: readers[name](instance) for name in names}
    if names == ():
        found = tuple(field.field_name for field in serializer._readable_fields)
        _all_known[type(serializer)] = found if found and all(name in readers for name in found) else None
    output = {}
    for field in serializer._readable_fields:
        name = field.field_name
        read = readers.get(name)
        if read is not None:
            output[name] = read(instance)
            continue
        try:  # what ModelSerializer.to_representation does for a field
            attribute = field.get_attribute(instance)
        except SkipField:
            continue
        value = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
        output[name] = None if value is None else field.to_representation(attribute)
    return output


def filled_routes(prefix: str, names: tuple[str, ...], object_id) -> dict:
    """{name: reverse(f"{prefix}-{name}", args=[object_id])}, reversing each route once
    per script prefix (with a placeholder id) and filling the id in."""
    script = get_script_prefix()
    filled = str(object_id)
    links = {}
    for name in names:
        key = (script, prefix, name)
        route = _routes.get(key)
        if route is None:
            route = _routes[key] = reverse(f"{prefix}-{name}", args=[_PLACEHOLDER])
        links[name] = route.replace(_PLACEHOLDER_TEXT, filled)
    return links


class Row(SimpleNamespace):
    """One row of a list read as values (``QuerySet.values``), with the attributes the
    readers read of a model instance: its columns, ``pk`` (its ``id``) and related rows."""

    @property
    def pk(self):
        return self.id


def rows(values, related: dict[str, tuple[str, ...]]) -> list[Row]:
    """``values`` (dicts from ``QuerySet.values``) as Rows; for each ``name: fields`` of
    ``related``, the columns ``<name>__<field>`` become the Row's ``name`` (a Row)."""
    found = []
    for row in values:
        for name, fields in related.items():
            row[name] = Row(**{field: row.pop(f"{name}__{field}") for field in fields})
        found.append(Row(**row))
    return found
