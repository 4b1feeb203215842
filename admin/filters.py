"""List filters and form conversion for kefu's own field types.

Why: Flask-Admin picks filters by the field's class name, so it does not know
`UTCDateTimeField` (a DateTimeField) and offers nothing for foreign keys; here dates get the
usual date-time filters and a foreign key gets "equals" with a choice of the related rows
(filter the conversations by agent, the deliveries by campaign, ...).
"""

from __future__ import annotations

from typing import Any

import peewee
from flask_admin.contrib.peewee import filters, form
from flask_admin.model.filters import convert

OPTIONS_LIMIT = 500


class RelatedEqual(filters.FilterEqual):
    def clean(self, value: str) -> int:
        return int(value)


def _related_options(column: peewee.ForeignKeyField) -> Any:
    def options() -> list[tuple[str, str]]:
        model = column.rel_model
        return [(str(row.id), str(row)) for row in model.select().order_by(model.id).limit(OPTIONS_LIMIT)]

    return options


class KefuFilterConverter(filters.FilterConverter):
    @convert("UTCDateTimeField")
    def conv_utc_datetime(self, column: Any, name: str) -> list[filters.BasePeeweeFilter]:
        return [f(column, name) for f in self.datetime_filters]

    @convert("ForeignKeyField")
    def conv_foreign_key(self, column: Any, name: str) -> list[filters.BasePeeweeFilter]:
        return [RelatedEqual(column, name, options=_related_options(column))]


class KefuModelConverter(form.CustomModelConverter):
    """Flask-Admin maps peewee's old `PrimaryKeyField` to an optional hidden field; peewee 4's
    `AutoField` is not a subclass of it, so an inline row's empty id would be "required"."""

    def __init__(self, view: Any, additional: Any = None) -> None:
        super().__init__(view, additional)
        self.converters[peewee.AutoField] = self.handle_pk
