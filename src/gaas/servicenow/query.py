"""ServiceNow encoded queries (`sysparm_query`): parsed into conditions on ServiceNow fields, AND
and OR groups, and the order. Translating fields and values is the table mapping's job.

Grammar (as ServiceNow documents it): `^` joins conditions with AND, `^OR` joins a condition to the
one before it with OR (binding tighter than AND), `^NQ` starts a new query OR-ed with the previous
ones; `ORDERBYfield` / `ORDERBYDESCfield` order the result; `^EQ` ends a query; `^^` is a literal
caret. A condition is `field` `operator` `value`. Anything else is refused, naming what.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gaas.core.errors import Problem


class QueryError(Problem):
    """An encoded query GaaS cannot answer exactly: a 400, never silently ignored."""

    status = 400
    slug = "invalid-query"
    title = "Invalid query"


# Supported operators (longest first, so that `!=` is not read as `!` plus `=`).
OPERATORS = ("ISNOTEMPTY", "ISEMPTY", "STARTSWITH", "ENDSWITH", "NOT LIKE", "NOTLIKE", "NOT IN", "LIKE", "IN",
             "!=", ">=", "<=", "=", "<", ">")
# Operators ServiceNow has that GaaS does not answer: named in the error.
UNSUPPORTED = ("NSAMEAS", "SAMEAS", "BETWEEN", "DATEPART", "RELATIVEGT", "RELATIVELT", "RELATIVEGE", "RELATIVELE",
               "RELATIVEEE", "MORETHAN", "LESSTHAN", "ANYTHING", "EMPTYSTRING", "DYNAMIC", "VALCHANGES",
               "CHANGESFROM", "CHANGESTO", "NOTON", "ON", "GT_FIELD", "LT_FIELD", "GT_OR_EQUALS_FIELD",
               "LT_OR_EQUALS_FIELD", "INSTANCEOF", "NOT INSTANCEOF", "IN HIERARCHY", "DOES NOT CONTAIN",
               "CONTAINS", "NOTSAMEAS", "ISNOTANYTHING", "WITHIN", "NOT_WITHIN")
_FIELD = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)")
_CARET = "\x00"


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str


@dataclass
class Query:
    """OR of AND-groups of OR-groups: queries[q][a] is a list of terms OR-ed together."""

    queries: list[list[list[Term]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(self.queries)


def _term(text: str) -> Term:
    text = text.replace(_CARET, "^")
    match = _FIELD.match(text)
    if not match:
        raise QueryError(f"Cannot read the condition '{text}': it must start with a field name.",
                         errors=[{"field": "sysparm_query", "message": f"unreadable condition '{text}'",
                                  "type": "syntax"}])
    name, rest = match.group(1), text[match.end():]
    for op in OPERATORS:
        if rest.startswith(op):
            value = rest[len(op):]
            if op in ("ISEMPTY", "ISNOTEMPTY") and value:
                break
            if op == "NOTLIKE":
                op = "NOT LIKE"
            if value.lower().startswith("javascript:"):
                raise QueryError(f"Condition '{text}': javascript: values are not supported.",
                                 errors=[{"field": name, "message": "javascript: values are not supported",
                                          "type": "unsupported_value"}])
            return Term(name, op, value)
    for op in UNSUPPORTED:
        if rest.startswith(op):
            raise QueryError(f"The operator {op} (in '{text}') is not supported; supported: "
                             f"{', '.join(o for o in OPERATORS if o != 'NOTLIKE')}.",
                             errors=[{"field": name, "message": f"operator {op} is not supported",
                                      "type": "unsupported_operator", "operator": op}])
    raise QueryError(f"Cannot read the operator in '{text}'; supported: "
                     f"{', '.join(o for o in OPERATORS if o != 'NOTLIKE')}.",
                     errors=[{"field": name, "message": f"unknown operator in '{text}'",
                              "type": "unsupported_operator"}])


def parse(encoded: str | None) -> Query:
    query = Query()
    if not encoded or not encoded.strip():
        return query
    text = encoded.replace("^^", _CARET)
    for part in text.split("^NQ"):
        groups: list[list[Term]] = []
        for raw in part.split("^"):
            chunk = raw.strip() if raw.strip() == "" else raw
            if not chunk or chunk == "EQ":
                continue
            if chunk.startswith("ORDERBYDESC"):
                query.order.append((chunk[len("ORDERBYDESC"):], True))
            elif chunk.startswith("ORDERBY"):
                query.order.append((chunk[len("ORDERBY"):], False))
            elif chunk.startswith("GROUPBY"):
                raise QueryError("GROUPBY is not supported by the Table API (ServiceNow answers it through the "
                                 "Aggregate API).", errors=[{"field": "sysparm_query", "message": "GROUPBY",
                                                             "type": "unsupported_operator"}])
            elif chunk.startswith("OR") and len(chunk) > 2 and (chunk[2].islower() or chunk[2] == "_"):
                if not groups:
                    raise QueryError(f"'^{chunk}' has no condition before it to OR with.",
                                     errors=[{"field": "sysparm_query", "message": "^OR without a condition",
                                              "type": "syntax"}])
                groups[-1].append(_term(chunk[2:]))
            else:
                groups.append([_term(chunk)])
        if groups:
            query.queries.append(groups)
    for name, _ in query.order:
        if not _FIELD.fullmatch(name):
            raise QueryError(f"Cannot order by '{name}'.", errors=[{"field": name, "message": "not a field name",
                                                                    "type": "syntax"}])
    return query
