"""Domain events of the knowledge base."""

ARTICLE_CREATED = "article.created"
ARTICLE_UPDATED = "article.updated"
ARTICLE_SUBMITTED = "article.submitted"  # a version went to review (payload: reviewer_id)
ARTICLE_REJECTED = "article.rejected"
ARTICLE_PUBLISHED = "article.published"
ARTICLE_RETIRED = "article.retired"  # by hand or because valid_to passed (payload: reason)
ARTICLE_DELETED = "article.deleted"
ARTICLE_RESTORED = "article.restored"
ARTICLE_FEEDBACK = "article.feedback"
ARTICLE_SOLVED_INCIDENT = "article.solved_incident"
KNOWN_ERROR_PUBLISHED = "known_error.published"
