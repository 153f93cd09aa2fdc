"""The list pages' queries: quotes, envelopes and mail, each searched and paged
(:mod:`web.paging`), newest first, showing a person only what they may see."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.models import Account, Envelope, EnvelopeRecipient, OutboxMessage, Quote, User
from web.paging import Listing, Page, matching, paginate
from web.services import envelopes as envelope_service
from web.services.quotes import READ_ALL as QUOTE_READERS


def quotes(session: Session, user: User, wanted: Listing, status: str | None) -> Page[Quote]:
    """Quotes by last change: a rep's own, everyone's for the roles that read all. The search
    matches the title or the account's name."""
    q = select(Quote).order_by(Quote.updated_at.desc(), Quote.id.desc())
    if not user.roles.intersection(QUOTE_READERS):
        q = q.where(Quote.owner_id == user.id)
    if status:
        q = q.where(Quote.status == status)
    if wanted.q:
        accounts = select(Account.id).where(matching(wanted.q, Account.name))
        q = q.where(or_(matching(wanted.q, Quote.title), Quote.account_id.in_(accounts)))
    return paginate(session, q, wanted)


def envelopes(session: Session, user: User, wanted: Listing,
              statuses: tuple[str, ...]) -> Page[Envelope]:
    """Envelopes the user may see, newest first. The search matches the title, the
    document's name, or a recipient's name or email."""
    q = envelope_service.visible(select(Envelope), user).order_by(
        Envelope.created_at.desc(), Envelope.id.desc())
    if statuses:
        q = q.where(Envelope.status.in_(statuses))
    if wanted.q:
        to = select(EnvelopeRecipient.envelope_id).where(
            matching(wanted.q, EnvelopeRecipient.name, EnvelopeRecipient.email))
        q = q.where(or_(matching(wanted.q, Envelope.title, Envelope.document_name),
                        Envelope.id.in_(to)))
    return paginate(session, q, wanted)


@dataclass(frozen=True)
class MailView:
    subject: str
    to_addr: str
    created_at: dt.datetime
    sent: bool
    body: str


# A signing link acts as its holder: outside development, an admin reading someone else's
# mail sees where it pointed, not the token.
_SIGN_LINK = re.compile(r"(/sign/)[A-Za-z0-9_\-]+")


def mail(session: Session, user: User, wanted: Listing, *,
         mask_others: bool) -> Page[MailView]:
    """The outbox, newest first: the mail sent to the user, or all of it for an admin. The
    search matches the subject or the recipient."""
    q = select(OutboxMessage).order_by(OutboxMessage.id.desc())
    if "admin" not in user.roles:
        q = q.where(OutboxMessage.to_addr == user.email)
    if wanted.q:
        q = q.where(matching(wanted.q, OutboxMessage.subject, OutboxMessage.to_addr))
    page = paginate(session, q, wanted)
    views = [MailView(m.subject, m.to_addr, m.created_at, m.sent_at is not None,
                      _SIGN_LINK.sub(r"\1…", m.body) if mask_others and m.to_addr != user.email
                      else m.body) for m in page.items]
    return Page(views, page.total, page.number, page.size)
