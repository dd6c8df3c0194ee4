"""Bodies the knowledge-base API reads and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, model_validator

from gaas.iam.schemas import DomainCode, Name, Record, Strict
from gaas.knowledge.models import ArticleKind, ArticleStatus, Audience, LinkType, VersionStatus

MAX_BODY = 100_000
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY)]
Summary = Annotated[str, StringConstraints(max_length=1000)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Keywords = Annotated[list[Keyword], Field(max_length=30)]
Note = Annotated[str, StringConstraints(max_length=1000)]
Comment = Annotated[str, StringConstraints(min_length=1, max_length=5000)]
Version = Annotated[int, Field(ge=1)]
Ids = Annotated[list[uuid.UUID], Field(max_length=50)]


class ArticleCreate(Strict):
    domain: DomainCode | None = Field(description="The domain, or null for a global article every domain reads")
    title: Name
    body: Body = Field(description="Markdown; shown rendered and sanitised")
    summary: Summary | None = None
    category: Category | None = None
    keywords: Keywords = []
    audience: Audience = Audience.everyone
    valid_to: AwareDatetime | None = Field(default=None, description="Retired automatically once passed")
    change_note: Note | None = None
    service_ids: Ids = []
    ci_ids: Ids = []
    problem_ids: Ids = []


class ArticleUpdate(Strict):
    """Content changes go to the article's open draft (opened from the published version when there
    is none); `valid_to` applies at once."""

    title: Name = None  # may be omitted, never null
    body: Body = None  # may be omitted, never null
    summary: Summary | None = None
    category: Category | None = None
    keywords: Keywords = None  # may be omitted, never null
    audience: Audience = None  # may be omitted, never null
    change_note: Note | None = None
    valid_to: AwareDatetime | None = None
    version: Version | None = None


class VersionAction(Strict):
    version: Version | None = Field(default=None, description="The article's version (or send If-Match)")


class SubmitBody(VersionAction):
    reviewer_id: uuid.UUID | None = Field(default=None, description="Ask this reviewer (not an author)")


class ApproveBody(VersionAction):
    comment: Comment | None = None


class RejectBody(VersionAction):
    comment: Comment


class RetireBody(VersionAction):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class LinkCreate(Strict):
    target_type: LinkType
    target_id: uuid.UUID


class FeedbackPut(Strict):
    helpful: bool | None = None
    comment: Comment | None = None

    @model_validator(mode="after")
    def _helpful_or_comment(self) -> FeedbackPut:
        if self.helpful is None and self.comment is None:
            raise ValueError("give 'helpful', a 'comment', or both")
        return self


class KnownErrorCreate(Strict):
    problem_id: uuid.UUID
    title: Name | None = Field(default=None, description="Default: 'Known error: ' and the problem's description")
    audience: Audience = Audience.everyone
    category: Category | None = "Known error"
    keywords: Keywords = []
    valid_to: AwareDatetime | None = None


class SolvedIncident(Strict):
    incident_id: uuid.UUID


class SearchLanguagePut(Strict):
    language: Annotated[str, StringConstraints(pattern=r"^[a-z_]{2,63}$")] = Field(
        description="A PostgreSQL text search configuration: english, french, german, simple, ...")
    version: Version | None = None


# ---- responses -------------------------------------------------------------------------------

class Stats(BaseModel):
    views: int = 0
    helpful: int = 0
    not_helpful: int = 0
    solved: int = 0


class LinkOut(BaseModel):
    id: uuid.UUID
    target_type: LinkType
    target_id: uuid.UUID
    number: str | None = None
    label: str | None = None
    status: str | None = None
    created_at: datetime
    created_by: uuid.UUID


class ProblemRef(BaseModel):
    """The problem a known error documents, as it stands now."""

    id: uuid.UUID
    number: str
    short_description: str
    status: str
    workaround: str | None
    known_error: bool


class PendingVersion(BaseModel):
    version_number: int
    status: VersionStatus
    author_id: uuid.UUID
    contributors: list[uuid.UUID]
    reviewer_id: uuid.UUID | None
    submitted_at: datetime | None
    review_comment: str | None


class ArticleBrief(Record):
    id: uuid.UUID
    number: str
    domain: str | None
    kind: ArticleKind
    status: ArticleStatus
    audience: Audience
    title: str
    summary: str | None
    category: str | None
    keywords: list[str]
    author_id: uuid.UUID
    problem_id: uuid.UUID | None
    published_version: int | None
    latest_version: int
    pending_version: int | None
    valid_to: datetime | None
    published_at: datetime | None
    updated_at: datetime
    deleted_at: datetime | None
    version: int


class ArticleOut(ArticleBrief):
    body: str
    body_html: str
    published_by: uuid.UUID | None
    retired_at: datetime | None
    retired_by: uuid.UUID | None
    retirement_reason: str | None
    created_at: datetime
    created_by: uuid.UUID
    updated_by: uuid.UUID
    stats: Stats = Stats()
    links: list[LinkOut] = []
    problem: ProblemRef | None = None
    pending: PendingVersion | None = None


class VersionOut(Record):
    id: uuid.UUID
    article_id: uuid.UUID
    version_number: int
    status: VersionStatus
    title: str
    summary: str | None
    body: str
    body_html: str
    category: str | None
    keywords: list[str]
    audience: Audience
    change_note: str | None
    author_id: uuid.UUID
    contributors: list[uuid.UUID]
    reviewer_id: uuid.UUID | None
    submitted_at: datetime | None
    submitted_by: uuid.UUID | None
    reviewed_at: datetime | None
    reviewed_by: uuid.UUID | None
    review_comment: str | None
    published_at: datetime | None
    published_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class FieldDiff(BaseModel):
    field: str
    before: str | list[str] | None
    after: str | list[str] | None
    diff: str = Field(description="Unified diff of the text (lines)")


class VersionDiff(BaseModel):
    article_id: uuid.UUID
    version_number: int
    against: int | None
    changes: list[FieldDiff]


class FeedbackOut(Record):
    id: uuid.UUID
    article_id: uuid.UUID
    article_version: int | None
    user_id: uuid.UUID
    helpful: bool | None
    comment: str | None
    domain: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class SolvedIncidentOut(BaseModel):
    article_id: uuid.UUID
    incident_id: uuid.UUID
    domain: str
    created_at: datetime
    created_by: uuid.UUID


class Suggestion(BaseModel):
    id: uuid.UUID
    number: str
    domain: str | None
    kind: ArticleKind
    title: str
    summary: str | None
    snippet: str | None = Field(description="HTML: escaped text with the matching words in <mark>")
    score: float
    solved: int
    helpful: int
    problem_id: uuid.UUID | None


class SearchLanguageOut(BaseModel):
    domain: str | None
    language: str
    inherited: bool
    version: int | None
