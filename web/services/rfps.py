"""The RFP workspace's use cases: one place for the pages and the API.

A customer's RFP file (DOCX, XLSX or PDF, at most :func:`limit_mb`) is uploaded, kept in
the blob store unchanged, and its questions read by ``documents.rfp``. A spreadsheet first
waits in ``needs_mapping`` with its candidate mappings until a person picks the sheet and
the question and answer columns. Each question gets the content library's suggestions; when
the best scores at least :data:`SUGGEST_THRESHOLD`, its text is pre-filled as a
``suggested`` answer (a person still confirms it by saving).

**Lifecycle.** ``needs_mapping`` → ``open`` (questions read) → ``in_review`` (every question
answered) → ``approved`` (the owner, deal desk, legal or an admin approves the answers) →
``completed``; ``recalled`` at any point before completion (the owner or a curator), after
which nothing changes. A question goes ``unanswered`` → ``suggested`` → ``answered`` →
``approved``.

**Who may do what.** Reps, deal desk, legal and admins create and answer (:data:`WRITERS`);
auditors read (:data:`READERS`); anyone holding a read-only role writes nothing; other roles
get 403. Every state change writes one audit row on ``rfp:{id}``. Bad input is a 422 (413
for size) naming the field, and nothing is written.

Blocking (documents.rfp reads zip packages, runs pdftotext): call these from a worker thread
(``store.db.in_session``), as the routes do.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dealdesk.settings import Settings
from documents import rfp as files
from documents.filenames import safe_filename
from store import audit, idempotency
from store.audit import entity
from store.blobs import BlobStore
from store.db import write_lock
from store.deals import CLOSED, Deal, forecast_of
from store.library import LibraryItem
from store.models import User
from store.rfps import Rfp, RfpQuestion
from store.who import Who
from web.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from web.paging import Listing, Page, matching, paginate
from web.services import deals, library
from workflows.rules import READ_ONLY_ROLES

WRITERS = frozenset({"rep", "deal_desk", "legal", "admin"})
READERS = WRITERS | {"auditor"}
APPROVERS = frozenset({"deal_desk", "legal", "admin"})
"""Besides the RFP's owner: who approves its answers and may recall it."""
MAX_BYTES = files.MAX_BYTES
"""What documents.rfp reads (50 MB): the cap on the upload limit, and the limit on reading
a stored file again (which an upload limit lowered since must not refuse)."""
SUGGEST_THRESHOLD = 0.6
"""A best suggestion scoring this or more pre-fills the answer (status ``suggested``)."""
SUGGESTIONS = 3
MAX_TITLE = 200
MAX_ANSWER = 20_000
MEDIA_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# A macro-enabled upload is read as its kind, so documents.rfp names the problem (macros).
_EXTENSIONS = {".docx": "docx", ".docm": "docx", ".xlsx": "xlsx", ".xlsm": "xlsx",
               ".pdf": "pdf"}
ANSWERED = ("answered", "approved")
EDITABLE = ("open", "in_review", "approved")


def may_read(user: User) -> bool:
    return bool(user.roles & READERS)


def may_write(user: User) -> bool:
    return bool(user.roles & WRITERS) and not user.roles.intersection(READ_ONLY_ROLES)


def may_approve(user: User, rfp: Rfp) -> bool:
    return may_write(user) and (rfp.owner_id == user.id or bool(user.roles & APPROVERS))


def _require_reader(user: User) -> None:
    if not may_read(user):
        raise Forbidden("RFPs are for sales, deal desk, legal, admins and auditors")


def require_writer(user: User) -> None:
    _require_reader(user)
    if not may_write(user):
        raise Forbidden("your roles read RFPs but do not create or answer them")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record(session: Session, user: User, rfp: Rfp, action: str, data: dict[str, Any],
           key: str | None = None) -> None:
    audit.append(session, event_key=key or f"rfp-{rfp.id}-{action}-{uuid.uuid4().hex}",
                 actor=Who.user(user), action=action, entity=entity("rfp", rfp.id), data=data)


def get_rfp(session: Session, user: User, rfp_id: int) -> Rfp:
    _require_reader(user)
    rfp = session.get(Rfp, rfp_id)
    if rfp is None:
        raise NotFound(f"no RFP {rfp_id}")
    return rfp


def _question(rfp: Rfp, qid: int) -> RfpQuestion:
    for q in rfp.questions:
        if q.id == qid:
            return q
    raise NotFound(f"RFP {rfp.id} has no question {qid}")


def _kind(name: str) -> str:
    kind = _EXTENSIONS.get(PurePath(name).suffix.lower())
    if kind is None:
        raise Invalid(f"{name}: upload a Word (.docx), Excel (.xlsx) or PDF (.pdf) file",
                      field="file")
    return kind


def _title(title: str, name: str) -> str:
    if "\x00" in title:
        raise Invalid("title holds a NUL character (\\u0000): remove it", field="title")
    text = " ".join(title.split()) or PurePath(name).stem or "RFP"
    if len(text) > MAX_TITLE:
        raise Invalid(f"title is too long: at most {MAX_TITLE} characters", field="title")
    return text


def _mapping_json(m: files.SheetMapping) -> dict[str, Any]:
    return {"sheet": m.sheet, "header_row": m.header_row,
            "question_column": m.question_column, "answer_column": m.answer_column}


def _candidate_json(c: files.SheetCandidate) -> dict[str, Any]:
    return {**_mapping_json(c.mapping), "question_header": c.question_header,
            "answer_header": c.answer_header, "samples": list(c.samples),
            "question_count": c.question_count}


def candidates(rfp: Rfp) -> list[dict[str, Any]]:
    """A spreadsheet's mapping candidates (best first), as stored."""
    found: list[dict[str, Any]] = (rfp.mapping or {}).get("candidates", [])
    return found


@dataclass(frozen=True)
class _Prefill:
    top_score: float | None
    item: LibraryItem | None


def _prefill(best: list[library.Suggestion]) -> _Prefill:
    if not best:
        return _Prefill(None, None)
    top = best[0]
    return _Prefill(top.score, top.item if top.score >= SUGGEST_THRESHOLD else None)


def _questions(session: Session, user: User,
               found: tuple[files.Question, ...] | list[files.Question]) -> list[RfpQuestion]:
    """Rows for ``found``, each with its best suggestion's score and, above the threshold,
    that item's text as a suggested answer (read before the write lock is taken)."""
    rows = []
    ranked = library.suggest_many(session, user, [q.text for q in found], limit=SUGGESTIONS)
    for n, (q, best) in enumerate(zip(found, ranked, strict=True), start=1):
        pre = _prefill(best)
        rows.append(RfpQuestion(
            position=n, location=q.location, text=q.text, context=q.context,
            answer=pre.item.body if pre.item else None,
            status="suggested" if pre.item else "unanswered", top_score=pre.top_score,
            library_item_id=pre.item.id if pre.item else None, suggested=_kept(best)))
    return rows


def _kept(best: list[library.Suggestion]) -> list[list[float]]:
    return [[s.item.id, s.score] for s in best]


def limit_mb(settings: Settings) -> int:
    """An upload's limit in MB: the installation's ``max_upload_mb`` (megabytes of 2^20
    bytes, as for envelopes), but never more than documents.rfp reads (:data:`MAX_BYTES`)."""
    return min(settings.max_upload_mb, MAX_BYTES // (1024 * 1024))


def create_rfp(session: Session, user: User, name: str | None, data: bytes, title: str = "",
               *, blobs: BlobStore, max_mb: int, idempotency_key: str | None = None,
               deal_id: int | None = None) -> Rfp:
    """Read the questions of an uploaded file and store it, the RFP and its questions (one
    transaction, committed). A workbook comes back ``needs_mapping`` with its
    candidates. Refused files are a 422 (413 over ``max_mb``, see :func:`limit_mb`) naming
    the problem. With a ``deal_id`` (an open deal the user sees) the RFP is that deal's
    step: its account's, and a deal still at intake moves to ``rfp``."""
    require_writer(user)
    name = safe_filename(name, "rfp")
    max_bytes = max_mb * 1024 * 1024
    if len(data) > max_bytes:
        raise TooLarge(f"{name} is larger than {max_mb} MB: upload a smaller file",
                       field="file")
    kind = _kind(name)
    title = _title(title, name)
    try:
        found = files.extract(data, kind, name=name, max_bytes=max_bytes)
    except files.RfpFileError as e:
        raise Invalid(str(e), field="file") from None
    ranked_at = utcnow()  # a library change from now on ranks them again
    rows = [] if found.needs_mapping else _questions(session, user, found.questions)
    sha = blobs.put(data)
    write_lock(session)
    digest = idempotency.request_hash(sha, title, str(deal_id))
    try:
        earlier = idempotency.earlier(session, user.id, "rfp", idempotency_key, digest)
    except idempotency.KeyReused as e:
        raise Invalid(str(e), field="Idempotency-Key") from None
    if earlier is not None:
        return get_rfp(session, user, earlier)
    deal = _open_deal(session, user, deal_id) if deal_id is not None else None
    now = utcnow()
    rfp = Rfp(title=title, owner_id=user.id, file_name=name, kind=kind, source_sha256=sha,
              status="needs_mapping" if found.needs_mapping else "open",
              mapping={"candidates": [_candidate_json(c) for c in found.candidates]}
              if found.needs_mapping else None,
              created_at=now, updated_at=now, questions=rows,
              suggested_at=None if found.needs_mapping else ranked_at,
              deal_id=deal.id if deal else None, account_id=deal.account_id if deal else None)
    session.add(rfp)
    session.flush()
    if deal is not None and deal.stage == "intake":
        deal.stage, deal.forecast_category, deal.updated_at = "rfp", forecast_of("rfp"), now
        audit.append(session, event_key=f"deal-{deal.id}-stage-rfp-{rfp.id}",
                     actor=Who.user(user), action="deal.stage_changed",
                     entity=entity("deal", deal.id), data={"from": "intake", "to": "rfp"})
    record(session, user, rfp, "rfp.created",
           {"title": title, "file": name, "kind": kind, "sha256": sha,
            "questions": len(rows), "status": rfp.status}, key=f"rfp-{rfp.id}-created")
    idempotency.remember(session, user.id, "rfp", idempotency_key, digest, rfp.id)
    session.commit()
    return rfp


def set_mapping(session: Session, user: User, rfp_id: int, mapping: files.SheetMapping,
                *, blobs: BlobStore) -> Rfp:
    """Read a workbook's questions with a person's ``mapping``; the RFP becomes ``open``."""
    require_writer(user)
    rfp = get_rfp(session, user, rfp_id)
    if rfp.kind != "xlsx":
        raise Conflict(f"{rfp.file_name} is not a spreadsheet: it needs no mapping",
                       field="mapping")
    if rfp.status != "needs_mapping":
        raise Conflict(f"RFP {rfp.id} is {rfp.status.replace('_', ' ')}: its questions were "
                       "already read", field="mapping")
    try:
        found = files.extract_xlsx(blobs.get(rfp.source_sha256), mapping, name=rfp.file_name,
                                   max_bytes=MAX_BYTES)
    except files.RfpFileError as e:
        raise Invalid(str(e), field="mapping") from None
    ranked_at = utcnow()
    rows = _questions(session, user, found)
    write_lock(session)
    session.refresh(rfp)
    if rfp.status != "needs_mapping":
        raise Conflict(f"RFP {rfp.id} was mapped meanwhile", field="mapping")
    rfp.questions = rows
    rfp.mapping = {**(rfp.mapping or {}), **_mapping_json(mapping)}
    rfp.status, rfp.suggested_at = "open", ranked_at
    rfp.updated_at = utcnow()
    session.flush()
    record(session, user, rfp, "rfp.mapped", {**_mapping_json(mapping),
                                              "questions": len(rows)},
           key=f"rfp-{rfp.id}-mapped")
    session.commit()
    return rfp


def require_editable(rfp: Rfp) -> None:
    if rfp.status not in EDITABLE:
        raise Conflict(f"RFP {rfp.id} is {rfp.status.replace('_', ' ')}: its answers can't "
                       "change", field="status")


def _settle(rfp: Rfp) -> None:
    """``in_review`` once every question has an answer, else ``open``."""
    done = all(q.status in ANSWERED for q in rfp.questions)
    rfp.status = "in_review" if done and rfp.questions else "open"


def answer(session: Session, user: User, rfp_id: int, qid: int, text: str,
           library_item_id: int | None = None) -> RfpQuestion:
    """Save a question's answer (empty: no answer); an approved RFP goes back to review."""
    require_writer(user)
    if "\x00" in text:
        raise Invalid("text holds a NUL character (\\u0000): remove it", field="text")
    if len(text) > MAX_ANSWER:
        raise Invalid(f"text is too long: at most {MAX_ANSWER:,} characters", field="text")
    text = text.strip()
    write_lock(session)
    rfp = get_rfp(session, user, rfp_id)
    q = _question(rfp, qid)
    require_editable(rfp)
    if library_item_id is not None and session.get(LibraryItem, library_item_id) is None:
        raise Invalid(f"no library item {library_item_id}", field="library_item_id")
    status = "answered" if text else "unanswered"
    if (q.answer or "") == text and q.status == status:
        return q
    q.answer, q.status = text or None, status
    if library_item_id is not None and library_item_id != q.library_item_id:
        # A suggestion used counts as a use of the item (the library ranks reviews by it).
        session.execute(update(LibraryItem).where(LibraryItem.id == library_item_id)
                        .values(usage_count=LibraryItem.usage_count + 1))
    if library_item_id is not None:
        q.library_item_id = library_item_id
    _settle(rfp)
    rfp.updated_at = utcnow()
    record(session, user, rfp, "rfp.answered",
           {"question_id": q.id, "location": q.location, "chars": len(text),
            "library_item_id": library_item_id})
    session.commit()
    return q


def approve_answers(session: Session, user: User, rfp_id: int) -> Rfp:
    """Approve every answered question: the RFP is ``approved`` (its owner, deal desk,
    legal or an admin)."""
    require_writer(user)
    write_lock(session)
    rfp = get_rfp(session, user, rfp_id)
    if not may_approve(user, rfp):
        raise Forbidden(f"only its owner ({rfp.owner.name}), deal desk, legal or an admin "
                        "approves this RFP's answers")
    require_editable(rfp)
    answered = [q for q in rfp.questions if q.status == "answered"]
    if not answered and not any(q.status == "approved" for q in rfp.questions):
        raise Conflict("no answers to approve yet: answer (or use a suggestion for) at "
                       "least one question", field="status")
    for q in answered:
        q.status = "approved"
    rfp.status = "approved"
    rfp.updated_at = utcnow()
    record(session, user, rfp, "rfp.approved",
           {"approved": len(answered),
            "unanswered": sum(q.status not in ANSWERED for q in rfp.questions)})
    session.commit()
    return rfp


def recall(session: Session, user: User, rfp_id: int) -> Rfp:
    """Withdraw the RFP (its owner, deal desk, legal or an admin): nothing changes after."""
    require_writer(user)
    write_lock(session)
    rfp = get_rfp(session, user, rfp_id)
    if not may_approve(user, rfp):
        raise Forbidden(f"only its owner ({rfp.owner.name}), deal desk, legal or an admin "
                        "recalls this RFP")
    if rfp.status in ("completed", "recalled"):
        raise Conflict(f"RFP {rfp.id} is already {rfp.status}", field="status")
    previous, rfp.status, rfp.updated_at = rfp.status, "recalled", utcnow()
    record(session, user, rfp, "rfp.recalled", {"previous": previous},
           key=f"rfp-{rfp.id}-recalled")
    session.commit()
    return rfp


def _open_deal(session: Session, user: User, deal_id: int) -> Deal:
    deal = session.get(Deal, deal_id)
    if deal is None or not deals.sees(user, deal):
        raise Invalid(f"no deal {deal_id}", field="deal_id")
    if deal.stage in CLOSED:
        raise Invalid(f"deal {deal.id} is {deal.stage}: answer RFPs for an open deal",
                      field="deal_id")
    return deal


def _answers(rfp: Rfp) -> list[RfpQuestion]:
    return [q for q in rfp.questions if q.status in ANSWERED and q.answer]


def _stem(rfp: Rfp) -> str:
    return PurePath(rfp.file_name).stem or "rfp"


def document(session: Session, user: User, rfp_id: int,
             *, blobs: BlobStore) -> tuple[str, bytes, str]:
    """The customer's own file with every answer in place (a PDF: the standard response
    document): ``(file name, bytes, media type)``."""
    rfp = get_rfp(session, user, rfp_id)
    if rfp.kind == "pdf":
        return response_doc(session, user, rfp_id)
    if rfp.status == "needs_mapping":
        raise Conflict("choose the sheet and columns first", field="mapping")
    answers = {q.location: q.answer or "" for q in _answers(rfp)}
    try:
        data = files.write_answers(blobs.get(rfp.source_sha256), rfp.kind, answers,
                                   name=rfp.file_name, max_bytes=MAX_BYTES)
    except files.RfpFileError as e:
        raise Conflict(str(e), field="answers") from None
    return f"{_stem(rfp)} (answered).{rfp.kind}", data, MEDIA_TYPES[rfp.kind]


def response_doc(session: Session, user: User, rfp_id: int) -> tuple[str, bytes, str]:
    """The standard response DOCX: every question and its answer (or "No answer yet")."""
    rfp = get_rfp(session, user, rfp_id)
    pairs = [(q.text, q.answer if q.status in ANSWERED and q.answer else "")
             for q in rfp.questions]
    return f"{_stem(rfp)} response.docx", files.response_document(rfp.title, pairs), \
        MEDIA_TYPES["docx"]


def promote_answer(session: Session, user: User, rfp_id: int, qid: int) -> LibraryItem:
    """Add an approved answer to the content library (question as title, answer as body,
    tag ``rfp``, owned by ``user``); the question remembers the item."""
    require_writer(user)
    rfp = get_rfp(session, user, rfp_id)
    q = _question(rfp, qid)
    if q.status != "approved" or not q.answer:
        raise Conflict("only an approved answer goes into the library", field="status")
    title = " ".join(q.text.split())
    if len(title) > library.MAX_TITLE:
        title = title[:library.MAX_TITLE - 1].rstrip() + "…"
    item = library.create_item(session, user, library.ItemFields(
        title=title, body=q.answer, tags=("rfp",)))
    write_lock(session)
    q = _question(get_rfp(session, user, rfp_id), qid)
    q.library_item_id = item.id
    record(session, user, q.rfp, "rfp.answer_promoted",
           {"question_id": q.id, "library_item_id": item.id})
    session.commit()
    return item


def suggestions(session: Session, user: User, rfp: Rfp,
                limit: int = SUGGESTIONS) -> dict[int, list[library.Suggestion]]:
    """Each question's library suggestions, best first: as ranked when the questions were
    read, or, when the library changed since (an item added, edited or archived), ranked
    again and kept (its own small commit)."""
    _require_reader(user)
    changed = session.scalar(select(func.max(LibraryItem.updated_at)))
    if rfp.suggested_at is None or (changed is not None and changed > rfp.suggested_at) \
            or any(q.suggested is None for q in rfp.questions):
        return _rank_again(session, user, rfp, limit)
    ids = sorted({int(i) for q in rfp.questions for i, _ in q.suggested or []})
    items: dict[int, LibraryItem] = {}
    for start in range(0, len(ids), 500):
        items.update((i.id, i) for i in session.scalars(select(LibraryItem).where(
            LibraryItem.id.in_(ids[start:start + 500]), LibraryItem.archived.is_(False))))
    return {q.id: [library.Suggestion(items[int(i)], score) for i, score in q.suggested or []
                   if int(i) in items][:limit] for q in rfp.questions}


def _rank_again(session: Session, user: User, rfp: Rfp,
                limit: int) -> dict[int, list[library.Suggestion]]:
    ranked_at = utcnow()
    ranked = library.suggest_many(session, user, [q.text for q in rfp.questions],
                                  max(limit, SUGGESTIONS))
    if rfp.questions:
        write_lock(session)
        for q, best in zip(rfp.questions, ranked, strict=True):
            q.suggested = _kept(best)
        rfp.suggested_at = ranked_at
        session.commit()
    return {q.id: best[:limit] for q, best in zip(rfp.questions, ranked, strict=True)}


@dataclass(frozen=True)
class Progress:
    answered: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.answered / self.total) if self.total else 0


def progress(rfp: Rfp) -> Progress:
    return Progress(sum(q.status in ANSWERED for q in rfp.questions), len(rfp.questions))


def list_rfps(session: Session, user: User, wanted: Listing,
              status: str | None = None) -> Page[Rfp]:
    """RFPs by last change, newest first, filtered by title text and status, 50 a page."""
    _require_reader(user)
    q = select(Rfp)
    if wanted.q:
        q = q.where(matching(wanted.q, Rfp.title, Rfp.file_name))
    if status:
        q = q.where(Rfp.status == status)
    return paginate(session, q.order_by(Rfp.updated_at.desc(), Rfp.id.desc()), wanted)

