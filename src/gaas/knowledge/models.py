"""gaas_knowledge: articles, their versions, links, solved incidents, feedback, counters, and the
text-search language of each domain."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, FetchedValue, ForeignKey, Integer, String, Text, Uuid, func
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, deferred, mapped_column

from gaas.core.errors import register_unique_fields
from gaas.core.ids import new_id
from gaas.core.models import Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_knowledge"

register_unique_fields({
    "articles_number_key": "number",
    "uq_article_known_error": "problem_id",
    "uq_article_version": "version",
    "uq_article_open_version": "version",
    "uq_article_published_version": "version",
    "uq_article_link": "target_id",
    "uq_article_incident": "incident_id",
    "uq_article_feedback_user": "user_id",
    "uq_search_settings_domain": "domain",
})


class ArticleStatus(enum.StrEnum):
    draft = "draft"
    review = "review"
    published = "published"
    retired = "retired"


class VersionStatus(enum.StrEnum):
    draft = "draft"
    review = "review"
    published = "published"
    superseded = "superseded"
    discarded = "discarded"


OPEN_VERSION = (VersionStatus.draft, VersionStatus.review)


class Audience(enum.StrEnum):
    agents = "agents"  # holders of knowledge_internal.view in the article's domain
    everyone = "everyone"  # every reader of the domain (holders of knowledge.view)


class ArticleKind(enum.StrEnum):
    article = "article"
    known_error = "known_error"


class LinkType(enum.StrEnum):
    service = "service"
    ci = "ci"
    problem = "problem"


# Content that each version carries; the article row holds the published version's copy.
CONTENT_FIELDS = ("title", "summary", "body", "body_html", "body_text", "category", "keywords", "audience")


class Article(BaseTableMixin, Base):
    __tablename__ = "articles"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "article"
    # Derived from `body` (and the search vector from everything): not repeated in the audit log.
    __audit_ignore__ = BaseTableMixin.__audit_ignore__ | {"body_html", "body_text", "search_vector"}

    number: Mapped[str] = mapped_column(String(50), unique=True, server_default=FetchedValue())
    kind: Mapped[ArticleKind] = mapped_column(pg_enum(ArticleKind, "article_kind", SCHEMA), default=ArticleKind.article)
    status: Mapped[ArticleStatus] = mapped_column(pg_enum(ArticleStatus, "article_status", SCHEMA),
                                                  default=ArticleStatus.draft)
    audience: Mapped[Audience] = mapped_column(pg_enum(Audience, "article_audience", SCHEMA),
                                               default=Audience.everyone)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(String(1000))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    author_id: Mapped[uuid.UUID]
    problem_id: Mapped[uuid.UUID | None]
    published_version: Mapped[int | None] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    pending_version: Mapped[int | None] = mapped_column(Integer)
    valid_to: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    published_by: Mapped[uuid.UUID | None]
    retired_at: Mapped[datetime | None]
    retired_by: Mapped[uuid.UUID | None]
    retirement_reason: Mapped[str | None] = mapped_column(String(500))
    # Kept by the database (trigger search_vector): never written from here.
    search_vector: Mapped[Any] = deferred(mapped_column(TSVECTOR, server_default=FetchedValue(),
                                                        server_onupdate=FetchedValue()))


class ArticleVersion(BaseTableMixin, Base):
    __tablename__ = "article_versions"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "article_version"
    __audit_ignore__ = BaseTableMixin.__audit_ignore__ | {"body_html", "body_text"}

    article_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.articles.id"))
    version_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[VersionStatus] = mapped_column(pg_enum(VersionStatus, "article_version_status", SCHEMA),
                                                  default=VersionStatus.draft)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(String(1000))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    audience: Mapped[Audience] = mapped_column(pg_enum(Audience, "article_audience", SCHEMA))
    change_note: Mapped[str | None] = mapped_column(String(1000))
    author_id: Mapped[uuid.UUID]
    contributors: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), default=list)
    reviewer_id: Mapped[uuid.UUID | None]
    submitted_at: Mapped[datetime | None]
    submitted_by: Mapped[uuid.UUID | None]
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[uuid.UUID | None]
    review_comment: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    published_by: Mapped[uuid.UUID | None]


class ArticleLink(Base):
    __tablename__ = "article_links"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str | None] = mapped_column(String(100))
    article_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.articles.id", ondelete="CASCADE"))
    target_type: Mapped[LinkType] = mapped_column(pg_enum(LinkType, "article_link_type", SCHEMA))
    target_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]


class ArticleIncident(Base):
    __tablename__ = "article_incidents"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str] = mapped_column(String(100))
    article_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.articles.id", ondelete="CASCADE"))
    incident_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]


class ArticleFeedback(BaseTableMixin, Base):
    __tablename__ = "article_feedback"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "article_feedback"

    article_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.articles.id", ondelete="CASCADE"))
    article_version: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[uuid.UUID]
    helpful: Mapped[bool | None] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)


class ArticleStats(Base):
    """Counters, written only by the database (triggers and gaas_knowledge.record_article_view)."""

    __tablename__ = "article_stats"
    __table_args__ = {"schema": SCHEMA}

    article_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.articles.id"), primary_key=True)
    domain: Mapped[str | None] = mapped_column(String(100))
    view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    not_helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    solved_count: Mapped[int] = mapped_column(Integer, default=0)
    last_viewed_at: Mapped[datetime | None]


class SearchSetting(BaseTableMixin, Base):
    __tablename__ = "search_settings"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "search_setting"

    language: Mapped[str] = mapped_column(String(63), default="english")
