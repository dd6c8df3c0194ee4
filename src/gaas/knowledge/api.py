"""Knowledge-base API: thin translation from HTTP to gaas.knowledge.service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gaas.core.errors import ValidationProblem
from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, set_etag
from gaas.core.pagination import Page
from gaas.knowledge import search, service
from gaas.knowledge.models import ArticleKind, ArticleStatus, Audience
from gaas.knowledge.schemas import (
    ApproveBody,
    ArticleBrief,
    ArticleCreate,
    ArticleOut,
    ArticleUpdate,
    FeedbackOut,
    FeedbackPut,
    KnownErrorCreate,
    LinkCreate,
    LinkOut,
    RejectBody,
    RetireBody,
    SearchLanguageOut,
    SearchLanguagePut,
    SolvedIncident,
    SolvedIncidentOut,
    SubmitBody,
    Suggestion,
    VersionAction,
    VersionDiff,
    VersionOut,
)

router = APIRouter(prefix="/api/v1", tags=["knowledge"])
DomainQuery = Annotated[str | None, Query(max_length=100)]

register_history("articles", "article", lambda db, actor, id_: service.get_article(db, actor, id_))


def _one(db, actor, response: Response, article) -> ArticleOut:
    set_etag(response, article.version)
    return service.article_out(db, actor, article)


@router.get("/articles", response_model=Page[ArticleBrief], summary="List and filter knowledge articles")
def list_articles(
    db: DbSession, actor: CurrentActor, limit: PageLimit,
    domain: DomainQuery = None,
    status: Annotated[list[ArticleStatus] | None, Query()] = None,
    kind: ArticleKind | None = None,
    audience: Audience | None = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Words, a title with typos, or a KB number")] = None,
    service_id: uuid.UUID | None = None,
    ci_id: uuid.UUID | None = None,
    problem_id: uuid.UUID | None = None,
    incident_id: Annotated[uuid.UUID | None, Query(description="Articles that solved this incident")] = None,
    in_review: Annotated[bool, Query(description="Only articles with a version waiting for review")] = False,
    include_deleted: bool = False,
    sort: Annotated[str | None, Query(max_length=50)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[ArticleBrief]:
    rows, next_cursor = service.list_articles(
        db, actor, domain=domain, status=status, kind=kind, audience=audience, category=category, q=q,
        service_id=service_id, ci_id=ci_id, problem_id=problem_id, incident_id=incident_id, in_review=in_review,
        include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[ArticleBrief](items=[ArticleBrief.model_validate(r) for r in rows], next_cursor=next_cursor,
                              limit=limit)


@router.post("/articles", response_model=ArticleOut, status_code=status.HTTP_201_CREATED,
             summary="Write an article (its first version, a draft)")
def create_article(body: ArticleCreate, db: DbSession, actor: CurrentActor, response: Response) -> ArticleOut:
    return _one(db, actor, response, service.create_article(db, actor, body))


@router.get("/articles/suggest", response_model=list[Suggestion],
            summary="Published articles relevant to an incident's short description, as it is typed")
def suggest(
    db: DbSession, actor: CurrentActor,
    text: Annotated[str, Query(min_length=1, max_length=500)],
    domain: Annotated[str | None, Query(max_length=100, description="The incident's domain")] = None,
    service_id: Annotated[uuid.UUID | None, Query(description="The incident's service: linked articles rank higher")
                          ] = None,
    ci_id: Annotated[uuid.UUID | None, Query(description="The incident's CI: linked articles rank higher")] = None,
    limit: Annotated[int, Query(ge=1)] = 5,
) -> list[Suggestion]:
    if limit > 20:
        raise ValidationProblem.field("limit", "must be at most 20")
    return search.suggest(db, actor, text, domain=domain, service_id=service_id, ci_id=ci_id, limit=limit)


@router.post("/articles/known-errors", response_model=ArticleOut, status_code=status.HTTP_201_CREATED,
             summary="Publish a known-error article from a problem with a workaround, in one call")
def create_known_error(body: KnownErrorCreate, db: DbSession, actor: CurrentActor, response: Response) -> ArticleOut:
    return _one(db, actor, response, service.create_known_error(db, actor, body))


@router.get("/articles/{article_id}", response_model=ArticleOut,
            summary="Read an article (counts a view of a published one)")
def get_article(article_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                count_view: Annotated[bool, Query(description="false: do not count this read")] = True) -> ArticleOut:
    article = service.get_article(db, actor, article_id)
    if count_view:
        service.record_view(db, article)
    return _one(db, actor, response, article)


@router.patch("/articles/{article_id}", response_model=ArticleOut,
              summary="Edit: content goes to the open draft (a new version of a published article)")
def update_article(article_id: uuid.UUID, body: ArticleUpdate, db: DbSession, actor: CurrentActor,
                   response: Response, if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.update_article(db, actor, article_id, body, if_match))


@router.delete("/articles/{article_id}", response_model=ArticleOut)
def delete_article(article_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                   if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.delete_article(db, actor, article_id, if_match))


@router.post("/articles/{article_id}/restore", response_model=ArticleOut)
def restore_article(article_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> ArticleOut:
    return _one(db, actor, response, service.restore_article(db, actor, article_id))


@router.post("/articles/{article_id}/submit", response_model=ArticleOut, summary="Send the draft to review")
def submit(article_id: uuid.UUID, body: SubmitBody, db: DbSession, actor: CurrentActor, response: Response,
           if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.submit(db, actor, article_id, body, if_match))


@router.post("/articles/{article_id}/withdraw", response_model=ArticleOut,
             summary="Take the version in review back to draft")
def withdraw(article_id: uuid.UUID, body: VersionAction, db: DbSession, actor: CurrentActor, response: Response,
             if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.withdraw(db, actor, article_id, body, if_match))


@router.post("/articles/{article_id}/approve", response_model=ArticleOut,
             summary="Publish the version in review (a reviewer who is not one of its authors)")
def approve(article_id: uuid.UUID, body: ApproveBody, db: DbSession, actor: CurrentActor, response: Response,
            if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.approve(db, actor, article_id, body, if_match))


@router.post("/articles/{article_id}/reject", response_model=ArticleOut,
             summary="Send the version in review back to its authors, with a comment")
def reject(article_id: uuid.UUID, body: RejectBody, db: DbSession, actor: CurrentActor, response: Response,
           if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.reject(db, actor, article_id, body, if_match))


@router.post("/articles/{article_id}/retire", response_model=ArticleOut)
def retire(article_id: uuid.UUID, body: RetireBody, db: DbSession, actor: CurrentActor, response: Response,
           if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.retire(db, actor, article_id, body, if_match))


@router.post("/articles/{article_id}/discard-draft", response_model=ArticleOut,
             summary="Drop the open draft of a published article")
def discard_draft(article_id: uuid.UUID, body: VersionAction, db: DbSession, actor: CurrentActor,
                  response: Response, if_match: IfMatch) -> ArticleOut:
    return _one(db, actor, response, service.discard_draft(db, actor, article_id, body, if_match))


@router.get("/articles/{article_id}/versions", response_model=list[VersionOut])
def list_versions(article_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> list[VersionOut]:
    return [VersionOut.model_validate(v) for v in service.list_versions(db, actor, article_id)]


@router.get("/articles/{article_id}/versions/{number}", response_model=VersionOut)
def get_version(article_id: uuid.UUID, number: int, db: DbSession, actor: CurrentActor) -> VersionOut:
    return VersionOut.model_validate(service.get_version(db, actor, article_id, number))


@router.get("/articles/{article_id}/versions/{number}/diff", response_model=VersionDiff,
            summary="What a version changed against the one before it (or ?against=n)")
def diff_version(article_id: uuid.UUID, number: int, db: DbSession, actor: CurrentActor,
                 against: Annotated[int | None, Query(ge=1)] = None) -> VersionDiff:
    return service.diff_versions(db, actor, article_id, number, against)


@router.post("/articles/{article_id}/links", response_model=LinkOut, status_code=status.HTTP_201_CREATED,
             summary="Link the article to a service, CI or problem")
def add_link(article_id: uuid.UUID, body: LinkCreate, db: DbSession, actor: CurrentActor) -> LinkOut:
    return service.add_link(db, actor, article_id, body)


@router.delete("/articles/{article_id}/links/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_link(article_id: uuid.UUID, link_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> None:
    service.remove_link(db, actor, article_id, link_id)


@router.put("/articles/{article_id}/feedback", response_model=FeedbackOut,
            summary="Helpful or not, and a comment (one per reader; again to change it)")
def put_feedback(article_id: uuid.UUID, body: FeedbackPut, db: DbSession, actor: CurrentActor,
                 response: Response) -> FeedbackOut:
    feedback, created = service.put_feedback(db, actor, article_id, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return FeedbackOut.model_validate(feedback)


@router.get("/articles/{article_id}/feedback", response_model=list[FeedbackOut],
            summary="Feedback on the article (authors and reviewers: all; readers: their own)")
def list_feedback(article_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> list[FeedbackOut]:
    return [FeedbackOut.model_validate(f) for f in service.list_feedback(db, actor, article_id)]


@router.get("/articles/{article_id}/solved-incidents", response_model=list[SolvedIncidentOut])
def solved_incidents(article_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> list[SolvedIncidentOut]:
    return [SolvedIncidentOut(article_id=r.article_id, incident_id=r.incident_id, domain=r.domain,
                              created_at=r.created_at, created_by=r.created_by)
            for r in service.solved_incidents(db, actor, article_id)]


@router.post("/articles/{article_id}/solved-incidents", response_model=SolvedIncidentOut,
             status_code=status.HTTP_201_CREATED, summary="Record that this article solved an incident")
def link_incident(article_id: uuid.UUID, body: SolvedIncident, db: DbSession, actor: CurrentActor,
                  response: Response) -> SolvedIncidentOut:
    link, created = service.link_incident(db, actor, article_id, body.incident_id)
    if not created:
        response.status_code = status.HTTP_200_OK
    return SolvedIncidentOut(article_id=link.article_id, incident_id=link.incident_id, domain=link.domain,
                             created_at=link.created_at, created_by=link.created_by)


@router.delete("/articles/{article_id}/solved-incidents/{incident_id}", status_code=status.HTTP_204_NO_CONTENT)
def unlink_incident(article_id: uuid.UUID, incident_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> None:
    service.unlink_incident(db, actor, article_id, incident_id)


@router.get("/search/language", response_model=SearchLanguageOut, tags=["search"],
            summary="The text-search language of a domain (no domain: the platform default)")
def get_search_language(db: DbSession, actor: CurrentActor, response: Response,
                        domain: DomainQuery = None) -> SearchLanguageOut:
    out = service.get_search_language(db, actor, domain)
    if out.version is not None:
        set_etag(response, out.version)
    return out


@router.put("/search/language", response_model=SearchLanguageOut, tags=["search"],
            summary="Set the text-search language of a domain; `gaas search reindex` applies it to existing rows")
def put_search_language(body: SearchLanguagePut, db: DbSession, actor: CurrentActor, response: Response,
                        if_match: IfMatch, domain: DomainQuery = None) -> SearchLanguageOut:
    out = service.put_search_language(db, actor, domain, body, if_match)
    set_etag(response, out.version or 1)
    return out
