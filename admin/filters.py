"""List filters and form conversion for kefu's own field types.

Why: Flask-Admin picks filters by the field's class name, so it does not know
`UTCDateTimeField` (a DateTimeField) and offers nothing for foreign keys; here dates get the
usual date-time filters and a foreign key gets "equals" with a choice of the related rows
(filter the conversations by agent, the deliveries by campaign, ...); those choices are read
per request (`FreshFilterOptions`), so an agent added while the panel runs is offered at once.
A column whose stored keys have labels (`column_choices`: a status, a reason) is filtered by
picking a label (`LabelledChoiceFilters`). Forms: see `KefuModelConverter`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import peewee
from flask_admin.contrib.peewee import filters, form
from flask_admin.form import DateTimePickerWidget
from flask_admin.model.filters import convert
from wtforms import DateTimeField, TextAreaField

from bot.core.db import UTCDateTimeField
from bot.core.models import JSONField

OPTIONS_LIMIT = 500


class RelatedEqual(filters.FilterEqual):
    def clean(self, value: str) -> int:
        return int(value)


def _related_options(column: peewee.ForeignKeyField) -> Any:
    def options() -> list[tuple[str, str]]:
        model = column.rel_model
        return [(str(row.id), str(row)) for row in model.select().order_by(model.id).limit(OPTIONS_LIMIT)]

    return options


def shop_zone() -> ZoneInfo:
    from admin.dashboard import shop_zone as zone

    return zone()


def local_time(view: Any, value: datetime, name: str) -> str:
    """Stored times are UTC; the panel shows them in the shop's timezone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(shop_zone()).strftime("%Y-%m-%d %H:%M:%S")


def readable_float(view: Any, value: float, name: str) -> str:
    """Scores and confidences in a list: 0.73, not 0.7312874 or 1.1195497668238105e-05."""
    return f"{value:.2f}"


def readable_float_detail(view: Any, value: float, name: str) -> str:
    """The detail page keeps more digits (as the "try it" box shows them), still never e-notation."""
    return f"{value:.4f}"


def _as_local(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_local(v) for v in value]
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=shop_zone())  # typed by an operator in shop time
    return value


def _local_filter(base: type) -> type:
    def clean(self: Any, value: str) -> Any:
        return _as_local(base.clean(self, value))

    return type(f"Local{base.__name__}", (base,), {"clean": clean})


class KefuFilterConverter(filters.FilterConverter):
    @convert("UTCDateTimeField")
    def conv_utc_datetime(self, column: Any, name: str) -> list[filters.BasePeeweeFilter]:
        return [_local_filter(f)(column, name) for f in self.datetime_filters]

    @convert("ForeignKeyField")
    def conv_foreign_key(self, column: Any, name: str) -> list[filters.BasePeeweeFilter]:
        return [RelatedEqual(column, name, options=_related_options(column))]


class FreshFilterOptions:
    """Flask-Admin computes every filter's choices once, when the view is created (at startup);
    a filter whose options are a callable (the related rows of a foreign key: agents, campaigns,
    ...) is asked again on each request, so a row added while the panel runs is offered."""

    _filters: list[Any] | None

    def _get_filter_groups(self) -> OrderedDict[str, list[dict[str, Any]]] | None:
        groups = super()._get_filter_groups()  # type: ignore[misc]
        for items in (groups or {}).values():
            for item in items:
                flt = (self._filters or [])[item["index"]]
                if callable(flt.options):
                    options = flt.get_options(self)
                    item["options"] = [(k, str(v)) for k, v in options] if options else None
        return groups


def choice_filters(column: peewee.Field, name: Any, choices: Any) -> list[filters.BasePeeweeFilter]:
    """"equals" / "not equal" offering `choices` ((stored key, label) pairs) in a select: the
    operator picks 顾客要求转人工, the query compares the stored key (`requested`). The labels
    may be lazy translations; Flask-Admin turns them into text per request (`non_lazy`)."""
    options = [(str(key), label) for key, label in choices]
    return [filters.FilterEqual(column, name, options=options), filters.FilterNotEqual(column, name, options=options)]


class LabelledChoiceFilters:
    """Flask-Admin's peewee views give a CharField free-text filters that take the stored key
    (`requested`, `abstained`, `window_closed`), which an operator neither sees in the panel nor
    can guess; a filtered column that has labelled `column_choices` gets choice filters instead."""

    column_choices: Any
    model: Any

    def scaffold_filters(self, name: Any) -> Any:
        choices = (self.column_choices or {}).get(name) if isinstance(name, str) else None
        if choices:
            label = self.get_column_name(name)  # type: ignore[attr-defined]
            return choice_filters(getattr(self.model, name), label, choices)
        return super().scaffold_filters(name)  # type: ignore[misc]


class LocalDateTimeField(DateTimeField):
    """A stored UTC time edited in the shop's time zone, like every time the panel shows
    (`local_time`): shown converted, and what the operator types is taken as shop time
    (`UTCDateTimeField` stores the aware value as UTC)."""

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        if isinstance(self.data, datetime):
            value = self.data if self.data.tzinfo else self.data.replace(tzinfo=timezone.utc)
            return value.astimezone(shop_zone()).strftime(self.format[0])
        return ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        self.data = _as_local(self.data)


class JSONTextField(TextAreaField):
    """A JSON value edited as text (a saved segment's filter, ...); bad JSON is a form error."""

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else json.dumps(self.data, ensure_ascii=False, indent=2)

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            text = str(valuelist[0]).strip()
            try:
                self.data = json.loads(text) if text else None
            except json.JSONDecodeError as exc:
                self.data = None
                raise ValueError(f"不是有效的 JSON：{exc.msg}（第 {exc.lineno} 行）") from None


class KefuModelConverter(form.CustomModelConverter):
    """Flask-Admin maps peewee's old `PrimaryKeyField` to an optional hidden field; peewee 4's
    `AutoField` is not a subclass of it, so an inline row's empty id would be "required".
    kefu's JSONField is edited as JSON text rather than as the dict's repr, and a
    `UTCDateTimeField` in the shop's time zone (`LocalDateTimeField`)."""

    def __init__(self, view: Any, additional: Any = None) -> None:
        super().__init__(view, additional)
        self.converters[peewee.AutoField] = self.handle_pk
        self.converters[JSONField] = self.handle_json_text

    def handle_datetime(self, model: Any, field: Any, **kwargs: Any) -> tuple[str, DateTimeField]:
        if not isinstance(field, UTCDateTimeField):
            return super().handle_datetime(model, field, **kwargs)  # type: ignore[no-any-return]
        kwargs["widget"] = DateTimePickerWidget()
        return field.name, LocalDateTimeField(**kwargs)

    def handle_json_text(self, model: Any, field: Any, **kwargs: Any) -> tuple[str, JSONTextField]:
        kwargs.pop("filters", None)
        return field.name, JSONTextField(**kwargs)
