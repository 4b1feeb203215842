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
from wtforms import TextAreaField
from wtforms.validators import ValidationError

from admin.auth import SecureModelView, SecureView
from admin.faq_csv import parse_csv, to_csv
from admin.messages import flash, text
from bot.core import clock, settings
from bot.faq import conflicts
from bot.faq import io as faq_io
from bot.faq import learning
from bot.faq.store import FaqStore, touch
from bot.core.migrations import FAQ_CATEGORIES
from bot.core.models import Faq, FaqCategory, FaqQuestion

MAX_PHRASING = 512  # FaqQuestion.text


def category_names() -> list[str]:
    """The categories an operator picks from: the shop's own (分类管理) in their order, then any
    an FAQ still carries (an imported file's), so no stored category disappears from a form."""
    names = [c.name for c in FaqCategory.select(FaqCategory.name).order_by(FaqCategory.position, FaqCategory.id)]
    used = [c for (c,) in Faq.select(Faq.category).distinct().order_by(Faq.category).tuples() if c]
    return list(dict.fromkeys([*(names or FAQ_CATEGORIES), *used]))


def split_phrasings(value: str | None) -> list[str]:
    """One phrasing per line, blank lines and repeats dropped, in the operator's order."""
    return list(dict.fromkeys(line.strip() for line in (value or "").splitlines() if line.strip()))


def _check_phrasings(form: Any, field: Any) -> None:
    texts = split_phrasings(field.data)
    if not texts:
        raise ValidationError(text(_l("至少填写一个问法（每行一个）")))
    long = next((t for t in texts if len(t) > MAX_PHRASING), None)
    if long:
        raise ValidationError(text(_l("问法太长（最多 %(n)s 字）：%(text)s"), n=MAX_PHRASING, text=long[:30]))


def flash_conflicts(found: list[conflicts.Conflict]) -> None:
    """Each conflict as a warning naming both phrasings and both answers (escaped when shown)."""
    for c in found:
        flash(_l("问法「%(phrasing)s」与 FAQ #%(other)s 的问法「%(other_phrasing)s」相近（得分 %(score)s，"
                 "达到回答阈值），顾客可能得到那条的答案。那条答案：%(other_answer)s；本条答案：%(answer)s"),
              "warning", phrasing=c.phrasing, other=c.other_id, other_phrasing=c.other_phrasing,
              score=f"{c.score:.2f}", other_answer=c.other_answer, answer=c.answer)


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
    """FAQs with their phrasings typed one per line in one box; saving warns when a phrasing
    is one another FAQ would answer (bot.faq.conflicts), naming both answers."""

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
    form_columns = ("category", "phrasings", "answer", "enabled")
    form_extra_fields = {"phrasings": TextAreaField(_l("问法（每行一个）"), validators=[_check_phrasings])}
    form_choices = {"category": [(c, c) for c in FAQ_CATEGORIES]}  # the live list: _with_categories
    form_widget_args = {"answer": {"rows": 5}, "phrasings": {"rows": 6}}
    list_template = "admin/kefu_faq_list.html"

    def _with_categories(self, form: Any, obj: Any = None) -> Any:
        names = category_names()
        current = getattr(obj, "category", None) or form.category.data
        if current and current not in names:
            names.append(current)
        form.category.choices = [(c, c) for c in names]
        return form

    def create_form(self, obj: Any = None) -> Any:
        return self._with_categories(super().create_form(obj), obj)

    def edit_form(self, obj: Any = None) -> Any:
        return self._with_categories(super().edit_form(obj), obj)

    def on_form_prefill(self, form: Any, id: Any) -> None:
        faq = Faq.get_or_none(Faq.id == int(id))
        if faq is not None and not form.phrasings.data:
            form.phrasings.data = "\n".join(q.text for q in faq.questions.order_by(FaqQuestion.id))

    def on_model_change(self, form: Any, model: Faq, is_created: bool) -> None:
        model.updated_at = clock.now()

    def after_model_change(self, form: Any, model: Faq, is_created: bool) -> None:
        if not model.external_id and not Faq.select().where(Faq.external_id == str(model.id)).exists():
            # the id its export carries, so an exported, edited and re-imported file updates it
            Faq.update(external_id=str(model.id)).where((Faq.id == model.id) & Faq.external_id.is_null()).execute()
        wanted = split_phrasings(form.phrasings.data)
        stored = {q.text: q.id for q in FaqQuestion.select().where(FaqQuestion.faq == model.id)}
        gone = [qid for t, qid in stored.items() if t not in wanted]
        if gone:
            FaqQuestion.delete().where(FaqQuestion.id.in_(gone)).execute()
        new = [{"faq": model.id, "text": t} for t in wanted if t not in stored]
        if new:  # kept rows keep their ids (ratings and hints point at the FAQ, not the row)
            FaqQuestion.insert_many(new).execute()
        touch(model.id)  # the phrasings were saved after the FAQ row: every process rebuilds
        if model.enabled:
            store = shared_store()
            store.refresh(force=True)
            flash_conflicts(conflicts.for_phrasings(store, wanted, threshold(), model.id, model.answer))

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


def _faq_count(view: Any, context: Any, model: FaqCategory, name: str) -> int:
    return Faq.select().where(Faq.category == model.name).count()


class FaqCategoryView(SecureModelView):
    """分类管理: the shop adds its own categories (双11活动), orders and renames them. A rename
    carries the FAQs along; a category still in use cannot be deleted (its FAQs would keep a
    name nobody can pick)."""

    column_list = ("name", "position", "faqs")
    column_labels = {"name": _l("分类名"), "position": _l("排序"), "faqs": _l("FAQ 数")}
    column_formatters = {"faqs": _faq_count}
    column_default_sort = ("position", False)
    column_searchable_list = ("name",)
    form_columns = ("name", "position")
    form_args = {"name": {"label": _l("分类名")}, "position": {"label": _l("排序（小的在前）")}}

    def on_model_change(self, form: Any, model: FaqCategory, is_created: bool) -> None:
        model.name = (model.name or "").strip()
        if not model.name:
            raise ValidationError(text(_l("分类名不能为空")))
        clash = FaqCategory.select().where((FaqCategory.name == model.name) & (FaqCategory.id != (model.id or 0)))
        if clash.exists():
            raise ValidationError(text(_l("已有同名分类：%(name)s"), name=model.name))
        if not is_created:
            old = FaqCategory.get_by_id(model.id).name
            if old != model.name:  # the FAQs follow the rename
                Faq.update(category=model.name, updated_at=clock.now()).where(Faq.category == old).execute()

    def delete_model(self, model: FaqCategory) -> bool:
        used = Faq.select().where(Faq.category == model.name).count()
        if used:
            flash(_l("分类「%(name)s」还有 %(n)s 条 FAQ，先把它们移到别的分类再删除"), "error", name=model.name, n=used)
            return False
        return bool(super().delete_model(model))


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
    return conflicts.answering_threshold(current_app.config["KEFU_CONFIG"].faq.threshold)


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
        categories = [(c, counts.get(c, 0), enabled.get(c, 0)) for c in category_names()]
        rivals = [r for r in results if r["passes"]]
        return self.render("admin/kefu_faq_tools.html", question=question, results=results, answer=answer,
                           threshold=limit, categories=categories, rivals=rivals if len(rivals) > 1 else [])

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
        flash_conflicts(conflicts.for_faqs(shared_store(), conflicts.imported_ids(r.id for r in records), threshold()))
        return redirect(url_for(".index"))
