"""The content library's use cases: one place for the pages, the API and the housekeeping.

**Who may do what.** Every signed-in person reads the library (:data:`READERS` is every
role). Reps, deal desk, legal and admins write it (:data:`WRITERS`); an item is edited or
archived by its owner or by a *curator* (:data:`CURATORS`: legal, deal desk, admin), who keep
the library's wording consistent. Anyone holding a read-only role (an auditor) writes
nothing, whatever else they hold — the approvals' rule (``workflows.rules.READ_ONLY_ROLES``).

Every edit is a new version (the item's ``version`` and a ``library_item_versions`` row),
audited as ``library_item.updated`` on ``library-item:{id}``; creating, archiving and marking
reviewed are audited too. A usage (``mark_used``) only counts: it is not a business fact.
Bad input is a 422 naming the field, and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from documents import section_template
from documents import suggest as ranker
from store import audit
from store import library as store
from store.audit import entity
from store.db import write_lock
from store.library import KINDS, LibraryItem, LibraryItemTag, LibraryItemVersion
from store.models import ROLES, OutboxMessage, User
from store.who import Who
from web.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from web.paging import Listing, Page, paginate
from workflows.rules import READ_ONLY_ROLES

READERS = frozenset(ROLES)
WRITERS = frozenset({"rep", "deal_desk", "legal", "admin"})
CURATORS = frozenset({"legal", "deal_desk", "admin"})
MAX_TITLE = 200
MAX_BODY = 20_000
MAX_TAGS = 12
MAX_TAG = 40
REVIEW_CYCLE = dt.timedelta(days=180)
"""A new or reviewed item is due for review again this long after (unless a date is given)."""
MAX_REVIEW_AHEAD = dt.timedelta(days=5 * 366)
CANDIDATES = 50
"""How many full-text hits the suggestions re-rank."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG = re.compile(r"[^\W_][\w\-. ]*", re.UNICODE)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True)
class ItemFields:
    """What a person types for an item."""

    title: str
    body: str
    tags: tuple[str, ...] = ()
    kind: str = "answer"
    review_by: dt.date | None = None


def _text(value: str, field: str, limit: int) -> str:
    if "\x00" in value:
        raise Invalid(f"{field} holds a NUL character (\\u0000): remove it", field=field)
    if _CONTROL.search(value):
        raise Invalid(f"{field} holds a control character: remove it", field=field)
    if len(value) > limit:
        raise Invalid(f"{field} is too long: {len(value):,} characters, at most {limit:,}",
                      field=field)
    return unicodedata.normalize("NFC", value)


def _tags(tags: tuple[str, ...]) -> list[str]:
    out: dict[str, None] = {}
    for raw in tags:
        tag = " ".join(_text(raw, "tags", 1000).split()).lower().replace(" ", "-")
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise Invalid(f"tag {tag[:50]!r} is too long: at most {MAX_TAG} characters",
                          field="tags")
        if not _TAG.fullmatch(tag):
            raise Invalid(f"tag {tag!r}: use letters, digits, '-', '_' and '.'", field="tags")
        out[tag] = None
    if len(out) > MAX_TAGS:
        raise Invalid(f"too many tags: {len(out)}, at most {MAX_TAGS}", field="tags")
    return sorted(out)


def check(fields: ItemFields, today: dt.date | None = None) -> ItemFields:
    """The fields tidied, or 422 naming the first one at fault."""
    title = " ".join(_text(fields.title, "title", 10 * MAX_TITLE).split())
    if not title:
        raise Invalid("give the item a title", field="title")
    if len(title) > MAX_TITLE:
        raise Invalid(f"title is too long: at most {MAX_TITLE} characters", field="title")
    body = _text(fields.body, "body", MAX_BODY).strip()
    if fields.kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}", field="kind")
    today = today or _today()
    if fields.review_by is not None and not (
            today <= fields.review_by <= today + MAX_REVIEW_AHEAD):
        raise Invalid("review_by must be from today to five years ahead", field="review_by")
    return ItemFields(title, body, tuple(_tags(fields.tags)), fields.kind, fields.review_by)


def may_read(user: User) -> bool:
    return bool(user.roles & READERS)


def may_write(user: User) -> bool:
    return bool(user.roles & WRITERS) and not user.roles.intersection(READ_ONLY_ROLES)


def may_edit(user: User, item: LibraryItem) -> bool:
    return may_write(user) and (item.owner_id == user.id or bool(user.roles & CURATORS))


def _require_reader(user: User) -> None:
    if not may_read(user):
        raise Forbidden("the library is for signed-in staff")


def require_editor(user: User, item: LibraryItem) -> None:
    if not may_write(user):
        raise Forbidden("your roles read the library but do not write it")
    if not may_edit(user, item):
        raise Forbidden(f"only its owner ({item.owner.name}) or legal, deal desk or an admin "
                        "may change this item")


def get_item(session: Session, user: User, item_id: int) -> LibraryItem:
    _require_reader(user)
    item = session.get(LibraryItem, item_id)
    if item is None:
        raise NotFound(f"no library item {item_id}")
    return item


def versions(session: Session, item: LibraryItem) -> list[LibraryItemVersion]:
    """Every saved version of ``item``, newest first."""
    return list(session.scalars(select(LibraryItemVersion).where(
        LibraryItemVersion.item_id == item.id).order_by(LibraryItemVersion.version.desc())))


def _keep_version(session: Session, item: LibraryItem, user: User) -> None:
    session.add(LibraryItemVersion(item_id=item.id, version=item.version, title=item.title,
                                   body=item.body, tags_text=item.tags_text,
                                   docx_sha256=item.docx_sha256, edited_by_id=user.id,
                                   edited_at=item.updated_at))


def require_writer(user: User) -> None:
    if not may_write(user):
        raise Forbidden("your roles read the library but do not write it")


def create_item(session: Session, user: User, fields: ItemFields) -> LibraryItem:
    """A new item (version 1) with its audit row, committed."""
    require_writer(user)
    fields = check(fields)
    write_lock(session)
    now = dt.datetime.now(dt.UTC)
    item = LibraryItem(kind=fields.kind, title=fields.title, body=fields.body,
                       tags_text=" ".join(fields.tags), owner_id=user.id, version=1,
                       usage_count=0, archived=False, created_at=now, updated_at=now,
                       review_by=fields.review_by or _today() + REVIEW_CYCLE,
                       tag_rows=[LibraryItemTag(tag=t) for t in fields.tags])
    session.add(item)
    session.flush()
    _keep_version(session, item, user)
    audit.append(session, event_key=f"library-item-{item.id}-v1", actor=Who.user(user),
                 action="library_item.created", entity=entity("library-item", item.id),
                 data={"title": item.title, "kind": item.kind, "tags": list(fields.tags)})
    session.commit()
    return item


def edit_item(session: Session, user: User, item_id: int, fields: ItemFields, *,
              base_version: int | None = None) -> LibraryItem:
    """Save ``fields`` as the item's next version (the previous stays in its versions),
    committed. ``base_version``: the version the editor started from; 409 if someone saved
    another since. Saving what is already there changes nothing."""
    fields = check(fields)
    write_lock(session)
    item = get_item(session, user, item_id)
    require_editor(user, item)
    if item.archived:
        raise Conflict("this item is archived: it can't be edited")
    if base_version is not None and base_version != item.version:
        raise Conflict(f"{item.title!r} was changed since you opened it (now version "
                       f"{item.version}): reload it and edit again", field="version")
    tags_text = " ".join(fields.tags)
    if (fields.title, fields.body, tags_text, fields.kind) == (
            item.title, item.body, item.tags_text, item.kind) and (
            fields.review_by is None or fields.review_by == item.review_by):
        session.commit()
        return item
    before = {"title": item.title, "version": item.version}
    item.title, item.body, item.kind, item.tags_text = (fields.title, fields.body,
                                                        fields.kind, tags_text)
    item.tag_rows = [LibraryItemTag(tag=t) for t in fields.tags]
    if fields.review_by is not None:
        item.review_by = fields.review_by
    item.version += 1
    item.updated_at = dt.datetime.now(dt.UTC)
    session.flush()
    _keep_version(session, item, user)
    audit.append(session, event_key=f"library-item-{item.id}-v{item.version}",
                 actor=Who.user(user), action="library_item.updated",
                 entity=entity("library-item", item.id),
                 data={"version": item.version, "previous": before, "title": item.title})
    session.commit()
    return item


MAX_DOCX = 20 * 1024 * 1024
"""A rich section's largest DOCX: a few pages with images, not a whole document."""


def check_docx_upload(name: str, data: bytes) -> list[str]:
    """A rich section's DOCX checked in the sandbox (blocking: call it on a thread): the
    template names it uses, or a 422 naming the problem."""
    if len(data) > MAX_DOCX:
        raise TooLarge(f"{name} is larger than {MAX_DOCX // 1024 // 1024} MB; a section is a "
                       "few pages", field="file")
    try:
        return section_template.check_isolated(data, name)
    except section_template.SectionTemplateError as e:
        raise Invalid(str(e), field="file") from None


def editable(session: Session, user: User, item_id: int) -> LibraryItem:
    """The item, if this user may change it now (checked before an upload is read)."""
    item = get_item(session, user, item_id)
    require_editor(user, item)
    if item.archived:
        raise Conflict("this item is archived: it can't be edited")
    return item


def attach_docx(session: Session, user: User, item_id: int, sha256: str,
                fields: list[str]) -> LibraryItem:
    """Make the checked DOCX (already in the blob store) the item's rich section, as its
    next version, committed. Proposals use it instead of the text."""
    write_lock(session)
    item = editable(session, user, item_id)
    if item.docx_sha256 == sha256:
        session.commit()
        return item
    item.docx_sha256, item.docx_fields = sha256, fields
    item.version += 1
    item.updated_at = dt.datetime.now(dt.UTC)
    session.flush()
    _keep_version(session, item, user)
    audit.append(session, event_key=f"library-item-{item.id}-v{item.version}",
                 actor=Who.user(user), action="library_item.updated",
                 entity=entity("library-item", item.id),
                 data={"version": item.version, "docx_sha256": sha256, "fields": fields,
                       "title": item.title})
    session.commit()
    return item


def archive_item(session: Session, user: User, item_id: int) -> LibraryItem:
    """Take the item out of search, suggestions and lists (it stays readable), committed."""
    write_lock(session)
    item = get_item(session, user, item_id)
    require_editor(user, item)
    if not item.archived:
        item.archived = True
        item.updated_at = dt.datetime.now(dt.UTC)
        audit.append(session, event_key=f"library-item-{item.id}-archived",
                     actor=Who.user(user), action="library_item.archived",
                     entity=entity("library-item", item.id), data={"title": item.title})
    session.commit()
    return item


def mark_used(session: Session, user: User, item_id: int) -> int:
    """Count one use of the item (pasted into an answer); its new count, committed."""
    write_lock(session)
    item = get_item(session, user, item_id)
    session.execute(update(LibraryItem).where(LibraryItem.id == item.id)
                    .values(usage_count=LibraryItem.usage_count + 1))
    session.commit()
    session.refresh(item)
    return item.usage_count


def mark_reviewed(session: Session, user: User, item_id: int,
                  next_review: dt.date | None = None) -> LibraryItem:
    """The owner (or a curator) confirms the item is still right: due again after a cycle."""
    write_lock(session)
    item = get_item(session, user, item_id)
    require_editor(user, item)
    today = _today()
    if next_review is not None and not today < next_review <= today + MAX_REVIEW_AHEAD:
        raise Invalid("the next review must be after today and within five years",
                      field="review_by")
    previous = item.review_by
    item.review_by = next_review or today + REVIEW_CYCLE
    audit.append(session, event_key=f"library-item-{item.id}-reviewed-{previous}",
                 actor=Who.user(user), action="library_item.reviewed",
                 entity=entity("library-item", item.id),
                 data={"previous_review_by": str(previous), "review_by": str(item.review_by)})
    session.commit()
    return item


@dataclass(frozen=True)
class ListFilter:
    tag: str | None = None
    kind: str | None = None
    owner_id: int | None = None
    due: bool = False


def _listed(f: ListFilter, today: dt.date) -> Select[Any]:
    q = select(LibraryItem).where(LibraryItem.archived.is_(False))
    if f.kind:
        q = q.where(LibraryItem.kind == f.kind)
    if f.owner_id:
        q = q.where(LibraryItem.owner_id == f.owner_id)
    if f.tag:
        q = q.where(LibraryItem.id.in_(select(LibraryItemTag.item_id)
                                       .where(LibraryItemTag.tag == f.tag)))
    if f.due:
        q = q.where(LibraryItem.review_by <= today)
    return q


def list_items(session: Session, user: User, wanted: Listing,
               f: ListFilter = ListFilter()) -> Page[LibraryItem]:
    """Items (not archived) by last change, filtered, 50 a page."""
    _require_reader(user)
    q = _listed(f, _today()).order_by(LibraryItem.updated_at.desc(), LibraryItem.id.desc())
    return paginate(session, q, wanted)


def popular_tags(session: Session, limit: int = 20) -> list[str]:
    """The most used tags of the items listed, for the filter chips."""
    rows = session.execute(
        select(LibraryItemTag.tag, func.count()).join(
            LibraryItem, LibraryItem.id == LibraryItemTag.item_id)
        .where(LibraryItem.archived.is_(False)).group_by(LibraryItemTag.tag)
        .order_by(func.count().desc(), LibraryItemTag.tag).limit(limit))
    return [r[0] for r in rows]


@dataclass(frozen=True)
class SearchHit:
    item: LibraryItem
    score: float
    title: list[tuple[str, bool]]
    snippet: list[tuple[str, bool]]
    """(text, matched) pieces: escape each, mark the matched ones."""


def search(session: Session, user: User, q: str, *, limit: int = 20,
           f: ListFilter = ListFilter()) -> list[SearchHit]:
    """Items matching every word of ``q`` (the last as a prefix), best first."""
    _require_reader(user)
    if _CONTROL.search(q):
        raise Invalid("the search holds a control character", field="q")
    hits = store.search(session, store.query_words(q), limit=limit, kind=f.kind, tag=f.tag)
    items = {i.id: i for i in session.scalars(select(LibraryItem).where(
        LibraryItem.id.in_([h.item_id for h in hits])))}
    return [SearchHit(items[h.item_id], h.score, store.segments(h.title),
                      store.segments(h.snippet)) for h in hits if h.item_id in items]


@dataclass(frozen=True)
class Suggestion:
    item: LibraryItem
    score: float


def suggest(session: Session, user: User, question: str, limit: int = 5) -> list[Suggestion]:
    """Library items that answer ``question``, best first: the full-text index's top
    :data:`CANDIDATES` for any of the question's words and concepts, re-ranked by
    ``documents.suggest``."""
    return suggest_many(session, user, [question], limit)[0]


def suggest_many(session: Session, user: User, questions: Sequence[str],
                 limit: int = 5) -> list[list[Suggestion]]:
    """:func:`suggest` for each of ``questions`` (an RFP's hundreds): one full-text query
    each, then every candidate loaded once, and each item's text analysed once for all."""
    _require_reader(user)
    if any(_CONTROL.search(q) for q in questions):
        raise Invalid("the question holds a control character", field="q")
    found: list[list[int]] = []
    for question in questions:
        words = [w for t in ranker.query_terms(question) for w in store.query_words(t)]
        found.append([h.item_id for h in store.search(
            session, list(dict.fromkeys(words)), any_word=True, prefix=False,
            limit=CANDIDATES, marked=False)])
    wanted = sorted({i for ids in found for i in ids})
    items: dict[int, LibraryItem] = {}
    for start in range(0, len(wanted), 500):  # bound the IN list
        items.update((i.id, i) for i in session.scalars(select(LibraryItem).where(
            LibraryItem.id.in_(wanted[start:start + 500]))))
    candidates = {i.id: ranker.Candidate(i.id, i.title, i.body, tuple(i.tags))
                  for i in items.values()}
    out = []
    for question, ids in zip(questions, found, strict=True):
        ranked = ranker.rank(question, [candidates[i] for i in ids if i in candidates], limit)
        out.append([Suggestion(items[int(str(s.key))], s.score) for s in ranked])
    return out


def due_for_review(session: Session, user: User, limit: int = 50) -> list[LibraryItem]:
    """The user's own items whose review date has come, oldest first (the inbox lists them)."""
    return list(session.scalars(_listed(ListFilter(owner_id=user.id, due=True), _today())
                                .order_by(LibraryItem.review_by, LibraryItem.id).limit(limit)))


def queue_review_notices(session: Session, base_url: str = "",
                         today: dt.date | None = None) -> int:
    """For each item whose review date has come: one audit row ``library_item.review_due``
    and one mail to its owner, once per item and review date (both keyed by it), committed.
    Returns how many were new. Run by the worker's housekeeping."""
    today = today or _today()
    write_lock(session)
    made = 0
    due = session.scalars(select(LibraryItem).where(
        LibraryItem.archived.is_(False), LibraryItem.review_by <= today)
        .order_by(LibraryItem.id).limit(500))
    for item in due:
        key = f"library-item-{item.id}-review-due-{item.review_by}"
        row = audit.append(session, event_key=key, actor=Who.system("housekeeping"),
                           action="library_item.review_due",
                           entity=entity("library-item", item.id),
                           data={"review_by": str(item.review_by), "owner_id": item.owner_id})
        if row is None:
            continue
        session.add(OutboxMessage(
            message_key=key, to_addr=item.owner.email,
            subject=f"Review due: {item.title}"[:300],
            body=(f"The library item \"{item.title}\" was due for review on "
                  f"{item.review_by}. Check it is still right and mark it reviewed:\n"
                  f"{base_url}/library/{item.id}\n")))
        made += 1
    session.commit()
    return made
