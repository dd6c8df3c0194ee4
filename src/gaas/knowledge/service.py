"""The knowledge base's rules: who reads which article, the review lifecycle with versions, links,
known errors, feedback and counters, validity, and the solved-incident links that rank articles.
The only entry to gaas_knowledge.

Reading: a published article is read by holders of `knowledge.view` in its domain (a global
article, domain NULL, by holders anywhere); an `agents` article also needs
`knowledge_internal.view`. Drafts, articles in review, retired and deleted ones are for holders of
`knowledge.write` or `knowledge.review` (for a global article: global holders). Anything else is 404.

Lifecycle (per version): draft → review → published → superseded, review → draft (withdrawn or
rejected), an open draft may be discarded. The article follows its versions: draft and review
until a first version is published, then published; retired by hand or when `valid_to` passes;
publishing a new version brings a retired article back. A reviewer (`knowledge.review`) approves
or rejects and is never one of the version's contributors (the database holds that rule too).
"""

from __future__ import annotations

import difflib
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, text, true
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from gaas.audit import service as audit
from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import where_equal
from gaas.core.records import (
    delete_announced,
    expected_version,
    hard_delete,
    restore_announced,
    stamp_created,
)
from gaas.iam import service as iam
from gaas.knowledge import events, render
from gaas.knowledge.models import (
    OPEN_VERSION,
    Article,
    ArticleIncident,
    ArticleKind,
    ArticleLink,
    ArticleStats,
    ArticleStatus,
    ArticleVersion,
    Audience,
    LinkType,
    SearchSetting,
    VersionStatus,
)
from gaas.knowledge.schemas import (
    ApproveBody,
    ArticleCreate,
    ArticleOut,
    ArticleUpdate,
    FeedbackPut,
    FieldDiff,
    KnownErrorCreate,
    LinkCreate,
    LinkOut,
    PendingVersion,
    ProblemRef,
    RejectBody,
    RetireBody,
    SearchLanguageOut,
    SearchLanguagePut,
    Stats,
    SubmitBody,
    VersionAction,
    VersionDiff,
)

VIEW, INTERNAL, WRITE, REVIEW = "knowledge.view", "knowledge_internal.view", "knowledge.write", "knowledge.review"
EDITABLE = ("title", "body", "summary", "category", "keywords", "audience")
ARTICLE_SORTS = (SortKey("updated_at", Article.updated_at), SortKey("number", Article.number),
                 SortKey("title", Article.title), SortKey("created_at", Article.created_at))


# ---- who may do what ----------------------------------------------------------------------------

def holds(actor: Actor, permission: str, domain: str | None) -> bool:
    """`permission` on a record of `domain`; a global record (domain NULL) is read by holders anywhere."""
    return actor.can(permission, domain) or (domain is None and actor.can_anywhere(permission))


def _edits(actor: Actor, domain: str | None) -> bool:
    """May work on drafts here (write or review); global articles need a global holder."""
    return actor.can(WRITE, domain) or actor.can(REVIEW, domain)


def _reads_published(actor: Actor, article: Article) -> bool:
    if not holds(actor, VIEW, article.domain):
        return False
    return article.audience == Audience.everyone or holds(actor, INTERNAL, article.domain)


def can_read(actor: Actor, article: Article) -> bool:
    if _edits(actor, article.domain):
        return True
    return article.deleted_at is None and article.status == ArticleStatus.published and _reads_published(actor, article)


def _scope(actor: Actor, permission: str, *, global_rows: str) -> ColumnElement[bool]:
    """SQL: the articles' domains where `permission` holds. `global_rows`: 'anywhere' (a global
    article is for holders anywhere) or 'global' (for global holders only)."""
    allowed = actor.domains_with(permission)
    if allowed is None:
        return true() if actor.can_anywhere(permission) else false()
    in_domains = Article.domain.in_(sorted(allowed)) if allowed else false()
    takes_global = actor.can_anywhere(permission) if global_rows == "anywhere" else actor.can(permission, None)
    return or_(in_domains, Article.domain.is_(None)) if takes_global else in_domains


def readable_filter(actor: Actor) -> ColumnElement[bool]:
    """SQL twin of can_read()."""
    published = and_(Article.status == ArticleStatus.published, Article.deleted_at.is_(None),
                     _scope(actor, VIEW, global_rows="anywhere"),
                     or_(Article.audience == Audience.everyone, _scope(actor, INTERNAL, global_rows="anywhere")))
    return or_(published, _scope(actor, WRITE, global_rows="global"), _scope(actor, REVIEW, global_rows="global"))


def _require(actor: Actor, permission: str, article_or_domain: Article | str | None) -> None:
    domain = article_or_domain.domain if isinstance(article_or_domain, Article) else article_or_domain
    if not actor.can(permission, domain):
        where = f"domain '{domain}'" if domain else "global articles (a global role)"
        raise Forbidden(f"This needs the '{permission}' permission for {where}.", permission=permission)


def _require_writer(actor: Actor, article: Article) -> None:
    if not (actor.can(WRITE, article.domain) or actor.can(REVIEW, article.domain)):
        _require(actor, WRITE, article)


# ---- reading ------------------------------------------------------------------------------------

def get_article(db: Session, actor: Actor, article_id: uuid.UUID, *, include_deleted: bool = True,
                lock: bool = False) -> Article:
    """An article the caller may read, else 404."""
    stmt = select(Article).where(Article.id == article_id)
    if lock:
        stmt = stmt.with_for_update()
    article = db.scalars(stmt).first()
    if article is None or (article.deleted_at is not None and not include_deleted) or not can_read(actor, article):
        raise NotFound(f"No article {article_id}.")
    return article


def _writable(db: Session, actor: Actor, article_id: uuid.UUID, permission: str | None = None) -> Article:
    article = get_article(db, actor, article_id, include_deleted=False)
    if permission is None:
        _require_writer(actor, article)
    else:
        _require(actor, permission, article)
    # Locked only now: row-level security hides rows from FOR UPDATE where one may not write.
    db.execute(select(Article.id).where(Article.id == article.id).with_for_update())
    return article


def record_view(db: Session, article: Article) -> int:
    """Count one read of a published article (a definer function: readers need no write access)."""
    if article.status != ArticleStatus.published or article.deleted_at is not None:
        return 0
    return int(db.execute(text("SELECT gaas_knowledge.record_article_view(:id)"), {"id": article.id}).scalar() or 0)


def list_articles(db: Session, actor: Actor, *, domain: str | None = None, status: list[ArticleStatus] | None = None,
                  kind: ArticleKind | None = None, audience: Audience | None = None, category: str | None = None,
                  q: str | None = None, service_id: uuid.UUID | None = None, ci_id: uuid.UUID | None = None,
                  problem_id: uuid.UUID | None = None, incident_id: uuid.UUID | None = None,
                  in_review: bool = False, include_deleted: bool = False, sort: str | None = None,
                  cursor: str | None = None, limit: int = 50) -> tuple[list[Article], str | None]:
    if not (actor.can_anywhere(VIEW) or actor.can_anywhere(WRITE) or actor.can_anywhere(REVIEW)):
        raise Forbidden("Reading knowledge needs the 'knowledge.view' permission.", permission=VIEW)
    stmt: Select = select(Article).where(readable_filter(actor))
    if not include_deleted:
        stmt = stmt.where(Article.deleted_at.is_(None))
    stmt = where_equal(stmt, (Article.domain, domain), (Article.kind, kind), (Article.audience, audience),
                       (Article.category, category))
    if status:
        stmt = stmt.where(Article.status.in_(status))
    for target_type, target_id in ((LinkType.service, service_id), (LinkType.ci, ci_id),
                                   (LinkType.problem, problem_id)):
        if target_id is not None:
            linked = select(ArticleLink.article_id).where(ArticleLink.target_type == target_type,
                                                          ArticleLink.target_id == target_id)
            if target_type == LinkType.problem:
                stmt = stmt.where(or_(Article.id.in_(linked), Article.problem_id == target_id))
            else:
                stmt = stmt.where(Article.id.in_(linked))
    if incident_id is not None:
        stmt = stmt.where(Article.id.in_(select(ArticleIncident.article_id)
                                         .where(ArticleIncident.incident_id == incident_id)))
    if in_review:
        stmt = stmt.where(Article.id.in_(select(ArticleVersion.article_id)
                                         .where(ArticleVersion.status == VersionStatus.review)))
    if q and q.strip():
        words = q.strip()
        db.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', '0.5', true)"))
        stmt = stmt.where(or_(
            Article.search_vector.op("@@")(text("websearch_to_tsquery(gaas_knowledge.search_config("
                                                "gaas_knowledge.articles.domain), :words)")
                                           .bindparams(words=words)),
            Article.title.op("%>")(words), Article.number == words.upper()))
    return paginate(stmt, id_column=Article.id, sort_keys=ARTICLE_SORTS, sort=sort or "-updated_at", cursor=cursor,
                    limit=limit, execute=db.scalars)


def _open_version(db: Session, article: Article) -> ArticleVersion | None:
    return db.scalars(select(ArticleVersion).where(ArticleVersion.article_id == article.id,
                                                   ArticleVersion.status.in_(OPEN_VERSION))
                      .with_for_update()).first()


def _version(db: Session, article: Article, number: int) -> ArticleVersion | None:
    return db.scalars(select(ArticleVersion).where(ArticleVersion.article_id == article.id,
                                                   ArticleVersion.version_number == number)).first()


def stats_of(db: Session, article_ids: list[uuid.UUID]) -> dict[uuid.UUID, Stats]:
    if not article_ids:
        return {}
    rows = db.scalars(select(ArticleStats).where(ArticleStats.article_id.in_(article_ids)))
    return {r.article_id: Stats(views=r.view_count, helpful=r.helpful_count, not_helpful=r.not_helpful_count,
                                solved=r.solved_count) for r in rows}


def _problem_ref(db: Session, actor: Actor, problem_id: uuid.UUID | None) -> ProblemRef | None:
    if problem_id is None:
        return None
    from gaas.incidents import problems

    try:
        problem = problems.get_problem(db, actor, problem_id, include_deleted=False)
    except NotFound:
        return None
    workaround = problem.workaround if problem.workaround and problem.workaround.strip() else None
    return ProblemRef(id=problem.id, number=problem.number, short_description=problem.short_description,
                      status=str(problem.status), workaround=workaround, known_error=workaround is not None)


def _link_target(db: Session, actor: Actor, target_type: LinkType, target_id: uuid.UUID) -> Any:
    """The live target the caller may see, else None (through its owning module)."""
    if target_type == LinkType.service:
        from gaas.catalog import service as catalog

        return catalog.service_exists(db, actor, target_id)
    if target_type == LinkType.ci:
        from gaas.cmdb import service as cmdb

        return cmdb.ci_exists(db, actor, target_id)
    from gaas.incidents import problems

    try:
        return problems.get_problem(db, actor, target_id, include_deleted=False)
    except NotFound:
        return None


def links_of(db: Session, actor: Actor, article: Article) -> list[LinkOut]:
    """The article's links to what the caller can see, with the target's number and name."""
    rows = db.scalars(select(ArticleLink).where(ArticleLink.article_id == article.id)
                      .order_by(ArticleLink.target_type, ArticleLink.created_at, ArticleLink.id))
    out = []
    for link in rows:
        target = _link_target(db, actor, link.target_type, link.target_id)
        if target is None:
            continue
        label = getattr(target, "name", None) or getattr(target, "short_description", None)
        status = getattr(target, "status", None)
        out.append(LinkOut(id=link.id, target_type=link.target_type, target_id=link.target_id,
                           number=getattr(target, "number", None), label=label,
                           status=str(status) if status is not None else None, created_at=link.created_at,
                           created_by=link.created_by))
    return out


def article_out(db: Session, actor: Actor, article: Article) -> ArticleOut:
    out = ArticleOut.model_validate(article)
    out.stats = stats_of(db, [article.id]).get(article.id, Stats())
    out.links = links_of(db, actor, article)
    out.problem = _problem_ref(db, actor, article.problem_id)
    if article.pending_version is not None and _edits(actor, article.domain):
        pending = _version(db, article, article.pending_version)
        if pending is not None:
            out.pending = PendingVersion(version_number=pending.version_number, status=pending.status,
                                         author_id=pending.author_id, contributors=list(pending.contributors),
                                         reviewer_id=pending.reviewer_id, submitted_at=pending.submitted_at,
                                         review_comment=pending.review_comment)
    return out


# ---- writing: articles and their versions -------------------------------------------------------

def _check_valid_to(valid_to: datetime | None) -> None:
    if valid_to is not None and valid_to <= datetime.now(UTC):
        raise ValidationProblem.field("valid_to", "must be in the future", "past")


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """Version content from editable fields, with the body rendered."""
    values = {k: data[k] for k in EDITABLE if k in data}
    if "body" in values:
        values["body_html"], values["body_text"] = render.render(values["body"])
    if "keywords" in values:
        values["keywords"] = list(dict.fromkeys(k.lower() for k in values["keywords"]))
    return values


def create_article(db: Session, actor: Actor, data: ArticleCreate, *, kind: ArticleKind = ArticleKind.article,
                   problem_id: uuid.UUID | None = None) -> Article:
    _require(actor, WRITE, data.domain)
    if data.domain is not None:
        iam.require_active_domain(db, data.domain)
    _check_valid_to(data.valid_to)
    targets = [(LinkType.service, i) for i in data.service_ids] + [(LinkType.ci, i) for i in data.ci_ids] + \
              [(LinkType.problem, i) for i in data.problem_ids]
    checked = [(t, i, _checked_target(db, actor, data.domain, t, i, f"{t.value}_ids")) for t, i in targets]
    content = _content(data.model_dump())
    article = Article(domain=data.domain, kind=kind, status=ArticleStatus.draft, author_id=actor.user_id,
                      problem_id=problem_id, latest_version=1, pending_version=1, valid_to=data.valid_to, **content)
    stamp_created(article, actor)
    db.add(article)
    db.flush()
    version = ArticleVersion(domain=article.domain, article_id=article.id, version_number=1,
                             status=VersionStatus.draft, author_id=actor.user_id, contributors=[actor.user_id],
                             change_note=data.change_note, **content)
    stamp_created(version, actor)
    db.add(version)
    seen = set()
    for target_type, target_id, _target in checked:
        if (target_type, target_id) not in seen:
            seen.add((target_type, target_id))
            _insert_link(db, actor, article, target_type, target_id)
    db.flush()
    emit(db, events.ARTICLE_CREATED, domain=article.domain, entity_type="article", entity_id=article.id,
         payload={"number": article.number, "title": article.title, "kind": article.kind,
                  "audience": article.audience})
    return article


def update_article(db: Session, actor: Actor, article_id: uuid.UUID, data: ArticleUpdate,
                   if_match: int | None) -> Article:
    article = _writable(db, actor, article_id)
    expected_version(if_match, data.version, article.version)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "valid_to" in changes and changes["valid_to"] != article.valid_to:
        _check_valid_to(changes["valid_to"])
        article.valid_to = changes["valid_to"]
    content = _content(changes)
    touched = False
    if content:
        draft = _open_version(db, article)
        if draft is not None and draft.status == VersionStatus.review:
            raise Conflict(f"Version {draft.version_number} is in review: withdraw it, or have it rejected, "
                           "before editing.", errors=[{"field": "status", "message": "in review", "type": "in_review",
                                                      "allowed": ["withdraw", "approve", "reject"]}])
        if draft is None:
            current = {k: getattr(article, k) for k in (*EDITABLE, "body_html", "body_text")}
            if all(current.get(k) == v for k, v in content.items()):
                content = {}  # nothing would change: no new version
            else:
                draft = _new_version(db, actor, article, current)
        if content:
            for key, value in content.items():
                setattr(draft, key, value)
            if db.is_modified(draft) or draft in db.new:
                touched = True
                if actor.user_id not in draft.contributors:
                    draft.contributors = [*draft.contributors, actor.user_id]
                if draft.reviewed_by in draft.contributors:
                    draft.reviewed_by, draft.reviewed_at = None, None  # that review was of other content
                if "change_note" in changes:
                    draft.change_note = changes["change_note"]
                draft.updated_by = actor.user_id
                if article.published_version is None:
                    for key, value in content.items():  # readers get nothing yet: the row shows the draft
                        setattr(article, key, value)
    if touched or db.is_modified(article):
        article.updated_by = actor.user_id
        flag_modified(article, "updated_by")  # a new version number for the article, even if only its draft changed
        db.flush()
        emit(db, events.ARTICLE_UPDATED, domain=article.domain, entity_type="article", entity_id=article.id,
             payload={"number": article.number, "changed": sorted(changes), "pending_version": article.pending_version})
    return article


def _new_version(db: Session, actor: Actor, article: Article, content: dict[str, Any]) -> ArticleVersion:
    number = article.latest_version + 1
    version = ArticleVersion(domain=article.domain, article_id=article.id, version_number=number,
                             status=VersionStatus.draft, author_id=actor.user_id, contributors=[], **content)
    stamp_created(version, actor)
    db.add(version)
    article.latest_version = number
    article.pending_version = number
    return version


def _transition_error(version: ArticleVersion | None, action: str, allowed_from: str) -> Conflict:
    state = f"version {version.version_number} is {version.status.value}" if version else "there is no open version"
    return Conflict(f"Cannot {action}: {state}; {action} needs a version in {allowed_from}.",
                    errors=[{"field": "status", "message": state, "type": "transition"}])


def _touch(article: Article, actor: Actor) -> None:
    article.updated_by = actor.user_id
    flag_modified(article, "updated_by")


def submit(db: Session, actor: Actor, article_id: uuid.UUID, data: SubmitBody, if_match: int | None) -> Article:
    article = _writable(db, actor, article_id, WRITE)
    expected_version(if_match, data.version, article.version)
    draft = _open_version(db, article)
    if draft is None or draft.status != VersionStatus.draft:
        raise _transition_error(draft, "submit", "draft")
    if data.reviewer_id is not None:
        if data.reviewer_id in draft.contributors:
            raise ValidationProblem.field("reviewer_id", "the reviewer must not be an author of the version",
                                          "own_work")
        allowed = (iam.user_allowed_in_domain(db, data.reviewer_id, article.domain) if article.domain
                   else iam.user_is_active(db, data.reviewer_id))
        if not allowed:
            raise ValidationProblem.field("reviewer_id", "no active user allowed in this domain has this id",
                                          "unknown_user")
    now = datetime.now(UTC)
    draft.status = VersionStatus.review
    draft.submitted_at, draft.submitted_by, draft.reviewer_id = now, actor.user_id, data.reviewer_id
    draft.updated_by = actor.user_id
    if article.status == ArticleStatus.draft:
        article.status = ArticleStatus.review
    _touch(article, actor)
    db.flush()
    emit(db, events.ARTICLE_SUBMITTED, domain=article.domain, entity_type="article", entity_id=article.id,
         payload={"number": article.number, "version": draft.version_number, "reviewer_id": data.reviewer_id})
    return article


def withdraw(db: Session, actor: Actor, article_id: uuid.UUID, data: VersionAction, if_match: int | None) -> Article:
    article = _writable(db, actor, article_id, WRITE)
    expected_version(if_match, data.version, article.version)
    draft = _open_version(db, article)
    if draft is None or draft.status != VersionStatus.review:
        raise _transition_error(draft, "withdraw", "review")
    draft.status = VersionStatus.draft
    draft.updated_by = actor.user_id
    if article.status == ArticleStatus.review:
        article.status = ArticleStatus.draft
    _touch(article, actor)
    db.flush()
    return article


def _require_other_reviewer(actor: Actor, version: ArticleVersion) -> None:
    if actor.user_id in version.contributors:
        raise Forbidden("You wrote this version: another reviewer must review it.", permission=REVIEW,
                        errors=[{"field": "reviewed_by", "message": "the reviewer must not be an author of the version",
                                 "type": "own_work"}])


def approve(db: Session, actor: Actor, article_id: uuid.UUID, data: ApproveBody, if_match: int | None) -> Article:
    article = _writable(db, actor, article_id, REVIEW)
    expected_version(if_match, data.version, article.version)
    pending = _open_version(db, article)
    if pending is None or pending.status != VersionStatus.review:
        raise _transition_error(pending, "approve", "review")
    _require_other_reviewer(actor, pending)
    if article.valid_to is not None and article.valid_to <= datetime.now(UTC):
        raise Conflict("The article's valid_to has passed: extend or clear it before publishing.",
                       errors=[{"field": "valid_to", "message": "in the past", "type": "expired"}])
    _publish(db, actor, article, pending, comment=data.comment)
    db.flush()
    emit(db, events.ARTICLE_PUBLISHED, domain=article.domain, entity_type="article", entity_id=article.id,
         payload={"number": article.number, "version": pending.version_number, "reviewed_by": actor.user_id})
    return article


def _publish(db: Session, actor: Actor, article: Article, version: ArticleVersion, *, comment: str | None) -> None:
    now = datetime.now(UTC)
    if article.published_version is not None:
        previous = _version(db, article, article.published_version)
        if previous is not None and previous.status == VersionStatus.published:
            previous.status = VersionStatus.superseded
            previous.updated_by = actor.user_id
            db.flush()  # one published version at a time (uq_article_published_version)
    version.status = VersionStatus.published
    version.reviewed_at, version.reviewed_by, version.review_comment = now, actor.user_id, comment
    version.published_at, version.published_by = now, actor.user_id
    version.updated_by = actor.user_id
    for key in (*EDITABLE, "body_html", "body_text"):
        setattr(article, key, getattr(version, key))
    article.status = ArticleStatus.published
    article.published_version = version.version_number
    article.pending_version = None
    article.published_at, article.published_by = now, actor.user_id
    article.retired_at = article.retired_by = article.retirement_reason = None
    _touch(article, actor)


def reject(db: Session, actor: Actor, article_id: uuid.UUID, data: RejectBody, if_match: int | None) -> Article:
    article = _writable(db, actor, article_id, REVIEW)
    expected_version(if_match, data.version, article.version)
    pending = _open_version(db, article)
    if pending is None or pending.status != VersionStatus.review:
        raise _transition_error(pending, "reject", "review")
    _require_other_reviewer(actor, pending)
    pending.status = VersionStatus.draft
    pending.reviewed_at, pending.reviewed_by, pending.review_comment = datetime.now(UTC), actor.user_id, data.comment
    pending.updated_by = actor.user_id
    if article.status == ArticleStatus.review:
        article.status = ArticleStatus.draft
    _touch(article, actor)
    db.flush()
    emit(db, events.ARTICLE_REJECTED, domain=article.domain, entity_type="article", entity_id=article.id,
         payload={"number": article.number, "version": pending.version_number, "comment": data.comment})
    return article


def discard_draft(db: Session, actor: Actor, article_id: uuid.UUID, data: VersionAction,
                  if_match: int | None) -> Article:
    """Drop the open draft of a published (or retired) article; readers keep the published version."""
    article = _writable(db, actor, article_id, WRITE)
    expected_version(if_match, data.version, article.version)
    draft = _open_version(db, article)
    if draft is None or draft.status != VersionStatus.draft:
        raise _transition_error(draft, "discard", "draft")
    if article.published_version is None:
        raise Conflict("This is the article's only content: delete the article instead.",
                       errors=[{"field": "status", "message": "never published", "type": "transition"}])
    draft.status = VersionStatus.discarded
    draft.updated_by = actor.user_id
    article.pending_version = None
    _touch(article, actor)
    db.flush()
    return article


def retire(db: Session, actor: Actor, article_id: uuid.UUID, data: RetireBody, if_match: int | None) -> Article:
    article = _writable(db, actor, article_id, REVIEW)
    expected_version(if_match, data.version, article.version)
    if article.status != ArticleStatus.published:
        raise Conflict(f"A {article.status.value} article cannot be retired; only a published one.",
                       errors=[{"field": "status", "message": f"{article.status.value} → retired is not allowed",
                                "type": "transition", "allowed": []}])
    _retire(db, actor, article, data.reason or "retired by a reviewer")
    return article


def _retire(db: Session, actor: Actor, article: Article, reason: str) -> None:
    article.status = ArticleStatus.retired
    article.retired_at, article.retired_by, article.retirement_reason = datetime.now(UTC), actor.user_id, reason
    _touch(article, actor)
    db.flush()
    emit(db, events.ARTICLE_RETIRED, domain=article.domain, entity_type="article", entity_id=article.id,
         payload={"number": article.number, "reason": reason})


def retire_expired(db: Session, *, batch: int = 1000) -> int:
    """Retire published articles whose valid_to has passed (at most `batch`), through the audited
    ORM path as the transaction's actor (the system, for the worker and `gaas knowledge retire`).
    Rows another runner holds are skipped, so runners can overlap."""
    actor: Actor | None = db.info.get("actor")
    if actor is None:
        raise Forbidden("Retiring needs an acting user (the system).")
    articles = db.scalars(select(Article).where(
        Article.status == ArticleStatus.published, Article.deleted_at.is_(None), Article.valid_to.is_not(None),
        Article.valid_to <= text("now()")).order_by(Article.valid_to).limit(batch)
        .with_for_update(skip_locked=True)).all()
    for article in articles:
        _retire(db, actor, article, f"valid_to passed ({article.valid_to.isoformat()})")
    return len(articles)


def delete_article(db: Session, actor: Actor, article_id: uuid.UUID, if_match: int | None) -> Article:
    article = get_article(db, actor, article_id)
    _require_deleter(actor, article)
    delete_announced(db, article, actor, if_match=if_match, event_type=events.ARTICLE_DELETED, entity_type="article")
    return article


def restore_article(db: Session, actor: Actor, article_id: uuid.UUID) -> Article:
    article = get_article(db, actor, article_id)
    _require_deleter(actor, article)
    restore_announced(db, article, actor, event_type=events.ARTICLE_RESTORED, entity_type="article")
    return article


def _require_deleter(actor: Actor, article: Article) -> None:
    """Reviewers delete anything; writers only what was never published."""
    if actor.can(REVIEW, article.domain):
        return
    if article.published_version is None and actor.can(WRITE, article.domain):
        return
    _require(actor, REVIEW, article)


# ---- versions -----------------------------------------------------------------------------------

def list_versions(db: Session, actor: Actor, article_id: uuid.UUID) -> list[ArticleVersion]:
    article = get_article(db, actor, article_id)
    stmt = select(ArticleVersion).where(ArticleVersion.article_id == article.id)
    if not _edits(actor, article.domain):
        stmt = stmt.where(ArticleVersion.status.in_([VersionStatus.published, VersionStatus.superseded]))
    return list(db.scalars(stmt.order_by(ArticleVersion.version_number)))


def get_version(db: Session, actor: Actor, article_id: uuid.UUID, number: int) -> ArticleVersion:
    article = get_article(db, actor, article_id)
    version = _version(db, article, number)
    if version is None or (not _edits(actor, article.domain)
                           and version.status not in (VersionStatus.published, VersionStatus.superseded)):
        raise NotFound(f"No version {number} of {article.number}.")
    return version


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def diff_versions(db: Session, actor: Actor, article_id: uuid.UUID, number: int,
                  against: int | None = None) -> VersionDiff:
    """What version `number` changed against `against` (default: the version before it)."""
    version = get_version(db, actor, article_id, number)
    if against is None:
        earlier = [v for v in list_versions(db, actor, article_id) if v.version_number < number]
        base = earlier[-1] if earlier else None
    else:
        try:
            base = get_version(db, actor, article_id, against)
        except NotFound as exc:
            raise ValidationProblem.field("against", f"no version {against} to compare with", "unknown_version") \
                from exc
    changes = []
    for field in ("title", "summary", "category", "keywords", "audience", "body"):
        before = getattr(base, field) if base is not None else None
        after = getattr(version, field)
        if isinstance(before, list) or isinstance(after, list):
            before_text, after_text = "\n".join(before or []), "\n".join(after or [])
        else:
            before_text, after_text = str(before or ""), str(after or "")
        if before_text == after_text:
            continue
        label_a = f"v{base.version_number}" if base is not None else "empty"
        diff = "".join(difflib.unified_diff(before_text.splitlines(keepends=True) or [""],
                                            after_text.splitlines(keepends=True),
                                            fromfile=f"{field}@{label_a}", tofile=f"{field}@v{number}"))
        changes.append(FieldDiff(field=field, before=_plain(before), after=_plain(after), diff=diff))
    return VersionDiff(article_id=version.article_id, version_number=number,
                       against=base.version_number if base is not None else None, changes=changes)


# ---- links --------------------------------------------------------------------------------------

def _checked_target(db: Session, actor: Actor, domain: str | None, target_type: LinkType, target_id: uuid.UUID,
                    field: str) -> Any:
    target = _link_target(db, actor, target_type, target_id)
    target_domain = getattr(target, "domain", None) if target is not None else None
    if target is None or (domain is not None and target_domain not in (None, domain)):
        where = f"domain '{domain}'" if domain else "any domain you see"
        raise ValidationProblem.field(field, f"no such {target_type.value} in {where}", f"unknown_{target_type.value}")
    return target


def _insert_link(db: Session, actor: Actor, article: Article, target_type: LinkType, target_id: uuid.UUID) -> None:
    link = ArticleLink(domain=article.domain, article_id=article.id, target_type=target_type, target_id=target_id,
                       created_by=actor.user_id)
    db.add(link)
    db.flush()
    audit.record(db, action="add_link", entity_type="article", entity_id=article.id, domain=article.domain,
                 changes={"after": {"link_id": link.id, "target_type": target_type, "target_id": target_id}})


def add_link(db: Session, actor: Actor, article_id: uuid.UUID, data: LinkCreate) -> LinkOut:
    article = _writable(db, actor, article_id, WRITE)
    _checked_target(db, actor, article.domain, data.target_type, data.target_id, "target_id")
    duplicate = db.scalar(select(ArticleLink.id).where(ArticleLink.article_id == article.id,
                                                       ArticleLink.target_type == data.target_type,
                                                       ArticleLink.target_id == data.target_id))
    if duplicate is not None:
        raise Conflict("This link already exists.", existing_id=str(duplicate),
                       errors=[{"field": "target_id", "message": "duplicate", "type": "unique"}])
    _insert_link(db, actor, article, data.target_type, data.target_id)
    return next(link for link in links_of(db, actor, article)
                if link.target_type == data.target_type and link.target_id == data.target_id)


def remove_link(db: Session, actor: Actor, article_id: uuid.UUID, link_id: uuid.UUID) -> None:
    article = _writable(db, actor, article_id, WRITE)
    link = db.get(ArticleLink, link_id)
    if link is None or link.article_id != article.id:
        raise NotFound(f"No link {link_id} on this article.")
    hard_delete(db, link)
    audit.record(db, action="remove_link", entity_type="article", entity_id=article.id, domain=article.domain,
                 changes={"before": {"link_id": link.id, "target_type": link.target_type,
                                     "target_id": link.target_id}})


# ---- known errors -------------------------------------------------------------------------------

def _known_error_body(problem: Any) -> str:
    def block(value: str | None, fallback: str) -> str:
        return value.strip() if value and value.strip() else fallback

    return (f"## Symptoms\n\n{block(problem.description, problem.short_description)}\n\n"
            f"## Cause\n\n{block(problem.root_cause, 'Under investigation.')}\n\n"
            f"## Workaround\n\n{problem.workaround.strip()}\n\n"
            f"## Status\n\nThis known error is tracked as problem {problem.number}; this article shows the "
            "problem's current status and is updated when a permanent fix is available.\n")


def create_known_error(db: Session, actor: Actor, data: KnownErrorCreate) -> Article:
    """One call: a known-error article from a problem with a workaround, linked to it. Published at
    once when the caller may review (the text is the problem record's, not the caller's own),
    otherwise submitted for review."""
    from gaas.incidents import problems

    try:
        problem = problems.get_problem(db, actor, data.problem_id, include_deleted=False)
    except NotFound as exc:
        raise ValidationProblem.field("problem_id", "no such problem", "unknown_problem") from exc
    if not actor.can("problem.view", problem.domain):
        raise ValidationProblem.field("problem_id", "no such problem", "unknown_problem")
    _require(actor, WRITE, problem.domain)
    if not problem.workaround or not problem.workaround.strip():
        raise ValidationProblem.field("problem_id", f"{problem.number} has no workaround: a known error needs one",
                                      "no_workaround")
    existing = db.scalar(select(Article.id).where(Article.problem_id == problem.id,
                                                  Article.kind == ArticleKind.known_error,
                                                  Article.deleted_at.is_(None)))
    if existing is not None:
        raise Conflict(f"{problem.number} already has a known-error article.", existing_id=str(existing),
                       errors=[{"field": "problem_id", "message": "already has a known-error article",
                                "type": "unique"}])
    body = ArticleCreate(domain=problem.domain, title=data.title or f"Known error: {problem.short_description}"[:200],
                         body=_known_error_body(problem), summary=f"Workaround for {problem.number}",
                         category=data.category, keywords=data.keywords, audience=data.audience,
                         valid_to=data.valid_to, change_note=f"Published from {problem.number}",
                         problem_ids=[problem.id])
    article = create_article(db, actor, body, kind=ArticleKind.known_error, problem_id=problem.id)
    version = _open_version(db, article)
    version.contributors = []  # written from the problem record, not by the caller
    now = datetime.now(UTC)
    version.status = VersionStatus.review
    version.submitted_at, version.submitted_by = now, actor.user_id
    article.status = ArticleStatus.review
    if actor.can(REVIEW, article.domain):
        _publish(db, actor, article, version, comment=f"Known error of {problem.number}")
    db.flush()
    if article.status == ArticleStatus.published:
        emit(db, events.KNOWN_ERROR_PUBLISHED, domain=article.domain, entity_type="article", entity_id=article.id,
             payload={"number": article.number, "problem_id": problem.id, "problem": problem.number})
    return article


# ---- feedback -----------------------------------------------------------------------------------

def put_feedback(db: Session, actor: Actor, article_id: uuid.UUID, data: FeedbackPut) -> tuple[Any, bool]:
    """The caller's feedback on a published article (one per reader; giving it again changes it)."""
    from gaas.knowledge.models import ArticleFeedback

    article = get_article(db, actor, article_id, include_deleted=False)
    if article.status != ArticleStatus.published:
        raise Conflict("Feedback is for published articles.",
                       errors=[{"field": "status", "message": article.status.value, "type": "not_published"}])
    if actor.read_only:
        raise Forbidden("A read-only token cannot give feedback.", permission=VIEW)
    mine = db.scalars(select(ArticleFeedback).where(ArticleFeedback.article_id == article.id,
                                                    ArticleFeedback.user_id == actor.user_id,
                                                    ArticleFeedback.deleted_at.is_(None)).with_for_update()).first()
    changes = data.model_dump(exclude_unset=True)
    created = mine is None
    if created:
        domain = article.domain if article.domain is not None else actor.home_domain
        mine = ArticleFeedback(domain=domain, article_id=article.id, article_version=article.published_version,
                               user_id=actor.user_id, helpful=changes.get("helpful"), comment=changes.get("comment"))
        stamp_created(mine, actor)
        db.add(mine)
    else:
        for key, value in changes.items():
            setattr(mine, key, value)
        if mine.helpful is None and not (mine.comment or "").strip():
            raise ValidationProblem.field("helpful", "give 'helpful', a 'comment', or both", "missing")
        mine.article_version = article.published_version
        mine.updated_by = actor.user_id
    db.flush()
    emit(db, events.ARTICLE_FEEDBACK, domain=article.domain, entity_type="article", entity_id=article.id,
         payload={"number": article.number, "helpful": mine.helpful, "has_comment": bool(mine.comment)})
    return mine, created


def list_feedback(db: Session, actor: Actor, article_id: uuid.UUID) -> list[Any]:
    from gaas.knowledge.models import ArticleFeedback

    article = get_article(db, actor, article_id)
    stmt = select(ArticleFeedback).where(ArticleFeedback.article_id == article.id,
                                         ArticleFeedback.deleted_at.is_(None))
    if not _edits(actor, article.domain):
        stmt = stmt.where(ArticleFeedback.user_id == actor.user_id)  # readers see their own
    return list(db.scalars(stmt.order_by(ArticleFeedback.updated_at.desc(), ArticleFeedback.id)))


# ---- the incidents an article solved ---------------------------------------------------------------

def link_incident(db: Session, actor: Actor, article_id: uuid.UUID, incident_id: uuid.UUID, *,
                  article_field: str = "article_id") -> tuple[ArticleIncident, bool]:
    """Record that article `article_id` solved incident `incident_id` (counted for ranking).
    Idempotent: returns (link, created). The incidents API calls this for the articles named on an
    incident; the caller must be able to edit the incident and read the published article."""
    from gaas.incidents import service as incidents

    incident = incidents.incident_exists(db, actor, incident_id)
    if incident is None:
        raise ValidationProblem.field("incident_id", "no such incident", "unknown_incident")
    if not actor.can("incident.edit", incident.domain):
        raise Forbidden(f"Linking articles to an incident needs 'incident.edit' in domain '{incident.domain}'.",
                        permission="incident.edit")
    try:
        article = get_article(db, actor, article_id, include_deleted=False)
    except NotFound as exc:
        raise ValidationProblem.field(article_field, "no such article", "unknown_article") from exc
    if article.status != ArticleStatus.published or not _reads_published(actor, article):
        raise ValidationProblem.field(article_field, f"{article.number} is not a published article you can read",
                                      "not_published")
    if article.domain is not None and article.domain != incident.domain:
        raise ValidationProblem.field(article_field, f"{article.number} belongs to another domain", "cross_domain")
    existing = db.scalars(select(ArticleIncident).where(ArticleIncident.article_id == article.id,
                                                        ArticleIncident.incident_id == incident.id)).first()
    if existing is not None:
        return existing, False
    link = ArticleIncident(domain=incident.domain, article_id=article.id, incident_id=incident.id,
                           created_by=actor.user_id)
    db.add(link)
    db.flush()
    audit.record(db, action="link_article", entity_type="incident", entity_id=incident.id, domain=incident.domain,
                 changes={"after": {"article_id": article.id, "article": article.number}})
    emit(db, events.ARTICLE_SOLVED_INCIDENT, domain=incident.domain, entity_type="article", entity_id=article.id,
         payload={"number": article.number, "incident_id": incident.id, "incident": incident.number})
    db.refresh(link)
    return link, True


def unlink_incident(db: Session, actor: Actor, article_id: uuid.UUID, incident_id: uuid.UUID) -> None:
    from gaas.incidents import service as incidents

    incident = incidents.incident_exists(db, actor, incident_id)
    link = db.scalars(select(ArticleIncident).where(ArticleIncident.article_id == article_id,
                                                    ArticleIncident.incident_id == incident_id)).first()
    if incident is None or link is None:
        raise NotFound(f"Article {article_id} is not linked to incident {incident_id}.")
    if not actor.can("incident.edit", incident.domain):
        raise Forbidden(f"Unlinking needs 'incident.edit' in domain '{incident.domain}'.", permission="incident.edit")
    hard_delete(db, link)
    audit.record(db, action="unlink_article", entity_type="incident", entity_id=incident.id, domain=incident.domain,
                 changes={"before": {"article_id": article_id}})


def solved_incidents(db: Session, actor: Actor, article_id: uuid.UUID) -> list[ArticleIncident]:
    """The incidents (that the caller may see) this article solved."""
    from gaas.incidents import service as incidents

    article = get_article(db, actor, article_id)
    rows = db.scalars(select(ArticleIncident).where(ArticleIncident.article_id == article.id)
                      .order_by(ArticleIncident.created_at.desc(), ArticleIncident.id)).all()
    found = incidents.incidents_existing(db, actor, [r.incident_id for r in rows])
    return [r for r in rows if r.incident_id in found]


def articles_for_incident(db: Session, actor: Actor, incident_id: uuid.UUID) -> list[Article]:
    """For the incidents module: the articles linked as having solved this incident (readable ones)."""
    ids = select(ArticleIncident.article_id).where(ArticleIncident.incident_id == incident_id)
    return list(db.scalars(select(Article).where(Article.id.in_(ids), readable_filter(actor),
                                                 Article.deleted_at.is_(None)).order_by(Article.number)))


# ---- text-search language per domain -----------------------------------------------------------------

def _setting(db: Session, domain: str | None) -> SearchSetting | None:
    stmt = select(SearchSetting).where(SearchSetting.deleted_at.is_(None))
    stmt = stmt.where(SearchSetting.domain.is_(None) if domain is None else SearchSetting.domain == domain)
    return db.scalars(stmt).first()


def get_search_language(db: Session, actor: Actor, domain: str | None) -> SearchLanguageOut:
    if domain is not None and (not actor.sees(domain) or iam.domain_by_code(db, domain) is None):
        raise NotFound(f"No domain '{domain}'.")
    own = _setting(db, domain)
    if own is not None:
        return SearchLanguageOut(domain=domain, language=own.language, inherited=False, version=own.version)
    platform = _setting(db, None)
    return SearchLanguageOut(domain=domain, language=platform.language if platform else "english", inherited=True,
                             version=None)


def put_search_language(db: Session, actor: Actor, domain: str | None, data: SearchLanguagePut,
                        if_match: int | None) -> SearchLanguageOut:
    """Set a domain's text-search language (NULL domain: the platform default). Rows written from
    now on use it; `gaas search reindex` rewrites the existing ones."""
    if domain is not None and (not actor.sees(domain) or iam.domain_by_code(db, domain) is None):
        raise NotFound(f"No domain '{domain}'.")
    if not actor.can("search.manage", domain):
        raise Forbidden("Setting the search language needs the 'search.manage' permission.",
                        permission="search.manage")
    known = db.scalar(text("SELECT count(*) FROM pg_catalog.pg_ts_config WHERE cfgname = :name"),
                      {"name": data.language})
    if not known:
        raise ValidationProblem.field("language", f"no text search configuration '{data.language}' on this server",
                                      "unknown_language")
    setting = _setting(db, domain)
    if setting is None:
        setting = SearchSetting(domain=domain, language=data.language)
        stamp_created(setting, actor)
        db.add(setting)
    else:
        expected_version(if_match, data.version, setting.version)
        setting.language = data.language
        setting.updated_by = actor.user_id
    db.flush()
    return SearchLanguageOut(domain=domain, language=setting.language, inherited=False, version=setting.version)


def reindex(db: Session, domain: str | None = None, *, batch: int = 5000, after: uuid.UUID | None = None
            ) -> tuple[int, uuid.UUID | None]:
    """Recompute the search vectors of one batch of articles (the trigger does the work)."""
    from gaas.search.providers import touch_rows

    return touch_rows(db, "gaas_knowledge.articles", domain, batch=batch, after=after)
