"""The knowledge base (articles: list, reading, writing, review) and the global search page."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gaas.core.http import DbSession
from gaas.knowledge import service as knowledge
from gaas.knowledge.models import ArticleKind, ArticleStatus, Audience
from gaas.knowledge.schemas import (
    ApproveBody,
    ArticleCreate,
    ArticleUpdate,
    FeedbackPut,
    RejectBody,
    RetireBody,
    SubmitBody,
)
from gaas.search import service as search
from gaas.ui import forms, lists
from gaas.ui.lists import Column, Filter, ListSpec, badge
from gaas.ui.pages import register
from gaas.ui.pages.core import history, stale_conflict
from gaas.ui.pages.portfolio import domain_options, enum_options, people
from gaas.ui.web import UI, CheckedForm, CurrentUI, UIRoute, redirect, render

router = APIRouter(route_class=UIRoute, include_in_schema=False)


def _fetch_articles(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    return knowledge.list_articles(
        db, ui.actor, domain=f.get("domain"), status=[ArticleStatus(f["status"])] if "status" in f else None,
        kind=ArticleKind(f["kind"]) if "kind" in f else None, category=f.get("category"), q=q,
        in_review=f.get("review") == "yes", sort=sort, cursor=cursor, limit=limit)


ARTICLES = register(ListSpec(
    name="articles", title="Knowledge articles", search="Search articles (words, a title with typos, a KB number)",
    columns=[Column("number", "Number", "number"), Column("title", "Title", "title"),
             Column("kind", "Kind", cell=lambda r, x: badge(r.kind)),
             Column("status", "Status", cell=lambda r, x: badge(r.status)),
             Column("domain", "Domain", cell=lambda r, x: r.domain or "all"), Column("category", "Category"),
             Column("updated_at", "Updated", "updated_at", cell=lambda r, x: r.updated_at.date())],
    filters=[Filter("domain", "Domain", domain_options), Filter("status", "Status", enum_options(ArticleStatus)),
             Filter("kind", "Kind", enum_options(ArticleKind)),
             Filter("review", "Waiting for review", [("yes", "Yes")])],
    fetch=_fetch_articles, link=lambda r: f"/articles/{r.id}", new=("/articles/new", "knowledge.write")))


@router.get("/articles", response_class=HTMLResponse)
def articles(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.page(request, db, ui, ARTICLES)


@router.get("/articles/export.csv")
def articles_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, ARTICLES)


ARTICLE_TEXT = ("title", "body", "summary", "category", "audience", "change_note")


def _article_values(form: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = forms.values(form, *ARTICLE_TEXT)
    values["keywords"] = [k.strip() for k in (forms.text(form, "keywords") or "").split(",") if k.strip()]
    return values


def _form_page(request, db, ui: UI, values, errors, article=None, conflict=None, status=200) -> Response:
    shown = dict(values)
    if isinstance(shown.get("keywords"), list):
        shown["keywords"] = ", ".join(shown["keywords"])
    return render(request, "article_form.html", {
        "title": ui.t("Edit article") if article else ui.t("Write an article"), "values": shown, "errors": errors,
        "a": article, "conflict": conflict, "domains": domain_options(db, ui),
        "audiences": enum_options(Audience)}, status=status)


@router.get("/articles/new", response_class=HTMLResponse)
def new_article(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _form_page(request, db, ui, {"domain": ui.actor.home_domain or "", "audience": "everyone"}, None)


@router.post("/articles/new", response_class=HTMLResponse)
def create_article(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = {**_article_values(form), "domain": forms.text(form, "domain")}
    created, errors = forms.attempt(db, lambda: knowledge.create_article(db, ui.actor, ArticleCreate.model_validate(
        {k: v for k, v in values.items() if v is not None or k == "domain"})))
    if errors:
        return _form_page(request, db, ui, values, errors, status=errors.status)
    return redirect(f"/articles/{created.id}", request, flash="Draft saved.")


def _article_page(request, db, ui: UI, article, *, errors=None, status=200) -> Response:
    out = knowledge.article_out(db, ui.actor, article)
    can_write = knowledge.holds(ui.actor, knowledge.WRITE, article.domain)
    can_review = knowledge.holds(ui.actor, knowledge.REVIEW, article.domain)
    pending = out.pending
    actions = []
    if pending is not None and pending.status.value == "draft" and can_write:
        actions.append("submit")
    if pending is not None and pending.status.value == "review" and can_review:
        actions += ["approve", "reject"]
    if article.status == ArticleStatus.published and can_review:
        actions.append("retire")
    return render(request, "article.html", {
        "title": f"{article.number} · {out.title}", "a": article, "out": out, "errors": errors,
        "can_write": can_write, "actions": actions, "versions": knowledge.list_versions(db, ui.actor, article.id),
        "names": people(db, [article.author_id, *([pending.author_id] if pending else [])]),
        "activity": history(db, "article", article.id)}, status=status)


@router.get("/articles/{article_id}", response_class=HTMLResponse)
def article_page(article_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    article = knowledge.get_article(db, ui.actor, article_id)
    if article.status == ArticleStatus.published:
        knowledge.record_view(db, article)
    return _article_page(request, db, ui, article)


@router.get("/articles/{article_id}/edit", response_class=HTMLResponse)
def edit_article(article_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    article = knowledge.get_article(db, ui.actor, article_id)
    out = knowledge.article_out(db, ui.actor, article)
    return _form_page(request, db, ui, {k: getattr(out, k, None) for k in (*ARTICLE_TEXT, "keywords")} |
                      {"audience": out.audience.value, "change_note": ""}, None, article)


@router.post("/articles/{article_id}/edit", response_class=HTMLResponse)
def save_article(article_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                 form: CheckedForm) -> Response:
    article = knowledge.get_article(db, ui.actor, article_id)
    values = _article_values(form)
    body = {**{k: v for k, v in values.items() if v is not None or k in ("summary", "category")},
            "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: knowledge.update_article(db, ui.actor, article_id,
                                                                   ArticleUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "article", article_id, article, {"title": values["title"]}) \
            if errors.stale else None
        return _form_page(request, db, ui, values, errors, article, conflict, status=errors.status)
    return redirect(f"/articles/{article_id}", request, flash="Saved.")


ACTIONS = {
    "submit": lambda db, ui, id_, f: knowledge.submit(db, ui.actor, id_, SubmitBody(version=forms.version(f)), None),
    "approve": lambda db, ui, id_, f: knowledge.approve(db, ui.actor, id_, ApproveBody(
        version=forms.version(f), comment=forms.text(f, "comment")), None),
    "reject": lambda db, ui, id_, f: knowledge.reject(db, ui.actor, id_, RejectBody.model_validate(
        {"version": forms.version(f), "comment": forms.text(f, "comment")}), None),
    "retire": lambda db, ui, id_, f: knowledge.retire(db, ui.actor, id_, RetireBody(
        version=forms.version(f), reason=forms.text(f, "comment")), None),
    "feedback": lambda db, ui, id_, f: knowledge.put_feedback(db, ui.actor, id_, FeedbackPut.model_validate(
        {"helpful": {"yes": True, "no": False}.get(forms.text(f, "helpful") or ""),
         "comment": forms.text(f, "comment")})),
}


@router.post("/articles/{article_id}/{action}", response_class=HTMLResponse)
def article_action(article_id: uuid.UUID, action: str, request: Request, db: DbSession, ui: CurrentUI,
                   form: CheckedForm) -> Response:
    article = knowledge.get_article(db, ui.actor, article_id)
    if action not in ACTIONS:
        return _article_page(request, db, ui, article, status=404)
    _, errors = forms.attempt(db, lambda: ACTIONS[action](db, ui, article_id, form))
    if errors:
        db.refresh(article)
        return _article_page(request, db, ui, article, errors=errors, status=errors.status)
    return redirect(f"/articles/{article_id}", request,
                    flash="Thank you for your feedback." if action == "feedback" else "Done.")


# ---- search language per domain ------------------------------------------------------------------

def _language_page(request, db, ui: UI, domain: str | None, *, errors=None, value: str | None = None,
                   status: int = 200) -> Response:
    current = knowledge.get_search_language(db, ui.actor, domain)
    return render(request, "search_language.html", {"title": ui.t("Search language"), "current": current,
                                                    "domain": domain, "domains": domain_options(db, ui),
                                                    "errors": errors, "value": value or current.language},
                  status=status)


@router.get("/admin/search-language", response_class=HTMLResponse)
def search_language(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _language_page(request, db, ui, request.query_params.get("domain") or None)


@router.post("/admin/search-language", response_class=HTMLResponse)
def save_search_language(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    from gaas.knowledge.schemas import SearchLanguagePut

    domain = forms.text(form, "domain")
    language = forms.text(form, "language")
    _, errors = forms.attempt(db, lambda: knowledge.put_search_language(db, ui.actor, domain, SearchLanguagePut(
        language=language or "", version=forms.version(form)), None))
    if errors:
        return _language_page(request, db, ui, domain, errors=errors, value=language, status=errors.status)
    return redirect(f"/admin/search-language?domain={domain or ''}", request, flash="Saved.")


# ---- global search ------------------------------------------------------------------------------

UI_PATHS = {"article": "/articles/", "incident": "/incidents/", "problem": "/problems/", "change": "/changes/",
            "service": "/services/", "ci": "/cis/"}


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    q = (request.query_params.get("q") or "").strip()
    types_param = request.query_params.get("types") or None
    cursor = request.query_params.get("cursor") or None
    hits, next_cursor, counts, error = [], None, {}, None
    if q:
        try:
            with db.begin_nested():
                types = search.parse_types(types_param)
                hits, next_cursor, counts = search.search(db, ui.actor, q, types=types, cursor=cursor, limit=20)
        except Exception as exc:  # a Problem (bad cursor, bad type): shown beside the box
            from gaas.core.errors import Problem

            if not isinstance(exc, Problem):
                raise
            error = exc.detail
    return render(request, "search.html", {"title": ui.t("Search"), "q": q, "hits": hits, "counts": counts,
                                           "next_cursor": next_cursor, "cursor": cursor, "error": error,
                                           "types": types_param or "", "paths": UI_PATHS})
