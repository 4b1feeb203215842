"""The knowledge base in the panel: FAQs with their phrasings, synonyms, categories,
import/export and a "try it" box.

Why the "try it" box runs the bot's own matcher (`FaqStore.match`) and threshold: an
operator who edits a phrasing must see exactly what a customer would now get, scores
included, before a customer does.
"""

from __future__ import annotations

from typing import Any

import peewee
from flask import Response, current_app, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.peewee.filters import BasePeeweeFilter
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from admin.auth import SecureModelView, SecureView
from admin.faq_csv import parse_csv, to_csv
from admin.messages import flash, text
from bot import clock, settings
from bot.faq import io as faq_io
from bot.faq import learning
from bot.faq.store import FaqStore, touch
from bot.models import Faq, FaqQuestion

CATEGORIES = ("聊天互动", "商品问题", "活动优惠", "购买操作", "物流问题", "售后问题", "更多问题")


def short(view: Any, context: Any, model: Any, name: str) -> Markup:
    """A long text cut for a list column; escaped (customers write some of these)."""
    value = str(getattr(model, name) or "")
    return escape(value[:60] + ("…" if len(value) > 60 else ""))


def _phrasings(view: Any, context: Any, model: Faq, name: str) -> Markup:
    texts = [q.text for q in model.questions.order_by(FaqQuestion.id)]
    return Markup("<br>").join(escape(t) for t in texts[:4]) + (Markup(" …") if len(texts) > 4 else "")


class PhrasingContains(BasePeeweeFilter):
    """Filter FAQs by a word in any of their phrasings."""

    def apply(self, query: peewee.ModelSelect, value: Any) -> peewee.ModelSelect:
        sub = FaqQuestion.select(FaqQuestion.faq).where(FaqQuestion.text.contains(value))
        return query.where(Faq.id.in_(sub))

    def operation(self) -> str:
        return text(_l("包含"))


class FaqView(SecureModelView):
    inline_models = ((FaqQuestion, {"form_label": _l("问法"), "form_args": {"text": {"label": _l("问法")}}}),)
    column_list = ("id", "category", "phrasings", "answer", "enabled", "hits", "likes", "dislikes", "updated_at")
    column_labels = {"category": _l("分类"), "phrasings": _l("问法"), "answer": _l("答案"), "enabled": _l("启用"),
                     "hits": _l("命中"), "likes": _l("赞"), "dislikes": _l("踩"), "updated_at": _l("更新时间"),
                     "external_id": _l("导入 id"), "created_at": _l("创建时间")}
    column_searchable_list = ("answer", "category")
    column_filters = ("category", "enabled", PhrasingContains(FaqQuestion.text, _l("问法")))
    column_formatters = {"answer": short, "phrasings": _phrasings}
    column_formatters_detail = {"phrasings": _phrasings}
    column_details_list = ("id", "category", "phrasings", "answer", "enabled", "hits", "likes", "dislikes",
                           "external_id", "created_at", "updated_at")
    column_default_sort = ("id", True)  # newest first
    form_columns = ("category", "answer", "enabled")
    form_choices = {"category": [(c, c) for c in CATEGORIES]}
    form_widget_args = {"answer": {"rows": 5}}
    list_template = "admin/kefu_faq_list.html"

    def edit_form(self, obj: Any = None) -> Any:
        form = super().edit_form(obj)
        current = getattr(obj, "category", None) or form.category.data
        if current and current not in CATEGORIES:  # an imported file's own category stays valid
            form.category.choices = [*form.category.choices, (current, current)]
        return form

    def on_model_change(self, form: Any, model: Faq, is_created: bool) -> None:
        model.updated_at = clock.now()

    def after_model_change(self, form: Any, model: Faq, is_created: bool) -> None:
        if not model.external_id and not Faq.select().where(Faq.external_id == str(model.id)).exists():
            # the id its export carries, so an exported, edited and re-imported file updates it
            Faq.update(external_id=str(model.id)).where((Faq.id == model.id) & Faq.external_id.is_null()).execute()
        touch(model.id)  # the phrasings were saved after the FAQ row: every process rebuilds

    def _set_enabled(self, ids: list[str], enabled: bool) -> int:
        return Faq.update(enabled=enabled, updated_at=clock.now()).where(Faq.id.in_([int(i) for i in ids])).execute()

    @expose("/low-rated/")
    def low_rated_view(self) -> Any:
        """FAQs customers rated 👎 most often: the answers to rewrite first."""
        return self.render("admin/kefu_low_rated.html", rows=learning.low_rated_faqs())

    @action("enable", _l("启用"), _l("启用所选 FAQ？"))
    def action_enable(self, ids: list[str]) -> None:
        flash(_l("已启用 %(n)s 条"), "success", n=self._set_enabled(ids, True))

    @action("disable", _l("停用"), _l("停用所选 FAQ？停用后机器人不再用它回答。"))
    def action_disable(self, ids: list[str]) -> None:
        flash(_l("已停用 %(n)s 条"), "success", n=self._set_enabled(ids, False))


class SynonymView(SecureModelView):
    column_list = ("canonical", "variants")
    column_labels = {"canonical": _l("标准词"), "variants": _l("同义词（空格或逗号分隔）")}
    column_searchable_list = ("canonical", "variants")


_store: FaqStore | None = None


def shared_store() -> FaqStore:
    """One FAQ store for the panel's process; it follows edits like the bot's does."""
    global _store
    if _store is None:
        _store = FaqStore(check_seconds=1.0)
    return _store


def threshold() -> float:
    configured = settings.get("faq_threshold")
    if configured is not None:
        return float(configured)
    return float(current_app.config["KEFU_CONFIG"].faq.threshold)


def file_error(exc: faq_io.FaqFileError) -> str:
    """Where and what, in the operator's language ("faq.csv 第 1 行：…"); the problem itself is
    translated when the panel raised it (admin/faq_csv.py), English when bot.faq.io did."""
    if exc.line:
        return text(_l("%(source)s 第 %(line)s 行：%(problem)s"), source=exc.source, line=exc.line, problem=exc.problem)
    return text(_l("%(source)s：%(problem)s"), source=exc.source, problem=exc.problem)


class FaqToolsView(SecureView):
    """Try a question, see categories, import and export."""

    @expose("/")
    def index(self) -> Any:
        question = request.args.get("q", "").strip()[:500]
        results: list[dict[str, Any]] = []
        answer = None
        limit = threshold()
        if question:
            store = shared_store()
            match = store.match(question, limit=5)
            for cand in match.candidates:
                found = store.answer_for(int(cand.faq_id), cand.question)
                results.append({"faq_id": cand.faq_id, "question": cand.question, "score": round(cand.score, 4),
                                "answer": found.answer if found else "", "passes": cand.score >= limit})
            if results and results[0]["passes"]:
                answer = results[0]
        counts = dict(Faq.select(Faq.category, peewee.fn.COUNT(Faq.id)).group_by(Faq.category).tuples())
        enabled = dict(Faq.select(Faq.category, peewee.fn.COUNT(Faq.id)).where(Faq.enabled == True)  # noqa: E712
                       .group_by(Faq.category).tuples())
        categories = [(c, counts.get(c, 0), enabled.get(c, 0)) for c in CATEGORIES]
        categories += [(c, n, enabled.get(c, 0)) for c, n in sorted(counts.items()) if c not in CATEGORIES]
        return self.render("admin/kefu_faq_tools.html", question=question, results=results, answer=answer,
                           threshold=limit, categories=categories)

    @expose("/export.<fmt>")
    def export(self, fmt: str) -> Any:
        records = faq_io.export_records()
        stamp = clock.now().astimezone(settings.shop_zone()).strftime("%Y%m%d")  # the shop's day, not UTC's
        if fmt == "csv":
            return Response(to_csv(records), mimetype="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f"attachment; filename=faq-{stamp}.csv"})
        if fmt == "jsonl":
            import json

            body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            return Response(body.encode("utf-8"), mimetype="application/x-ndjson; charset=utf-8",
                            headers={"Content-Disposition": f"attachment; filename=faq-{stamp}.jsonl"})
        return Response("unknown format", status=404)

    @expose("/import", methods=("POST",))
    def import_view(self) -> Any:
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(_l("请选择要导入的文件"), "error")
            return redirect(url_for(".index"))
        data = upload.read(20 * 1024 * 1024)
        name = upload.filename
        try:
            if name.lower().endswith(".csv"):
                records = parse_csv(data, name)
            else:
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError:
                    raise faq_io.FaqFileError(name, 0, _l("不是 UTF-8 文本")) from None
                records = faq_io.parse_jsonl(text.splitlines(), name)
            report = faq_io.apply(records)
        except faq_io.FaqFileError as exc:
            flash(_l("导入失败，未导入任何内容：%(error)s"), "error", error=file_error(exc))
            return redirect(url_for(".index"))
        flash(_l("导入完成：新增 %(created)s 条，更新 %(updated)s 条，未变 %(unchanged)s 条"), "success",
              created=report.created, updated=report.updated, unchanged=report.unchanged)
        return redirect(url_for(".index"))
