"""Which deal a workflow belongs to, and which workflows a deal has, read from the store.

A deal's process is ``dealflow-{deal}``; its steps keep their own ids, which the store
records where a row has one (``approval_requests``, ``envelopes``, ``proposal_versions``)
and which are otherwise built from a business key: ``rfp-{rfp}``, a won quote's billing run
``billing-{quote}`` (``deal-{quote}`` before the move, ``dealdesk/billing_ids.py``) and a
subscription's renewal ``renewal-{subscription}`` (every term a run of that id). The history
archive files each run under its deal with :func:`deal_of`; the replay check and the
evidence of a deal list its runs with :func:`workflow_ids_of`.
"""

from __future__ import annotations

import re

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.deals import deal_workflow_id
from store.models import ApprovalRequest, Envelope, Quote
from store.proposals import Proposal, ProposalVersion
from store.rfps import Rfp
from store.subscriptions import Subscription, renewal_workflow_id

_KEYED = re.compile(r"(?P<kind>dealflow|rfp|billing|deal|renewal)-(?P<key>\d+)")


def _quote_deal(session: Session, quote_id: int | None) -> int | None:
    if quote_id is None:
        return None
    return session.scalar(select(Quote.deal_id).where(Quote.id == quote_id))


def _deal_of_keyed(session: Session, kind: str, key: int) -> int | None:
    if kind == "dealflow":
        return key
    if kind == "rfp":
        return session.scalar(select(Rfp.deal_id).where(Rfp.id == key))
    if kind == "renewal":
        return session.scalar(select(Subscription.deal_id).where(Subscription.id == key))
    return _quote_deal(session, key)  # billing-{quote}, or its old id deal-{quote}


def deal_of(session: Session, prefix: str, workflow_id: str) -> int | None:
    """The deal ``workflow_id`` belongs to; None for a workflow of no deal (a stand-alone
    envelope, the nightly health recompute) or of another installation's ``prefix``."""
    request = session.execute(select(ApprovalRequest.quote_id).where(
        ApprovalRequest.workflow_id == workflow_id)).first()
    if request is not None:
        return _quote_deal(session, request.quote_id)
    envelope = session.execute(select(Envelope.deal_id, Envelope.quote_id).where(
        Envelope.workflow_id == workflow_id)).first()
    if envelope is not None:
        return envelope.deal_id or _quote_deal(session, envelope.quote_id)
    proposal = session.execute(select(Proposal.deal_id, Proposal.quote_id).join(
        ProposalVersion, ProposalVersion.proposal_id == Proposal.id).where(
        ProposalVersion.workflow_id == workflow_id)).first()
    if proposal is not None:
        return proposal.deal_id or _quote_deal(session, proposal.quote_id)
    if not workflow_id.startswith(prefix):
        return None
    keyed = _KEYED.fullmatch(workflow_id[len(prefix):])
    return _deal_of_keyed(session, keyed["kind"], int(keyed["key"])) if keyed else None


def workflow_ids_of(session: Session, prefix: str, deal_id: int) -> list[str]:
    """Every workflow id the deal's runs may have (some never started: a quote not won has
    no billing run), the deal's process first."""
    quotes = list(session.execute(select(Quote.id, Quote.status).where(
        Quote.deal_id == deal_id)))
    quote_ids = [q.id for q in quotes]
    ids = [deal_workflow_id(prefix, deal_id)]
    ids += session.scalars(select(ApprovalRequest.workflow_id).where(
        ApprovalRequest.quote_id.in_(quote_ids)).order_by(ApprovalRequest.id))
    ids += session.scalars(select(ProposalVersion.workflow_id).join(
        Proposal, ProposalVersion.proposal_id == Proposal.id).where(or_(
            Proposal.deal_id == deal_id, Proposal.quote_id.in_(quote_ids)))
        .order_by(ProposalVersion.id))
    ids += session.scalars(select(Envelope.workflow_id).where(or_(
        Envelope.deal_id == deal_id, Envelope.quote_id.in_(quote_ids))).order_by(Envelope.id))
    ids += (f"{prefix}rfp-{rfp}" for rfp in session.scalars(
        select(Rfp.id).where(Rfp.deal_id == deal_id).order_by(Rfp.id)))
    for quote in quotes:
        if quote.status == "won":
            ids += [f"{prefix}billing-{quote.id}", f"{prefix}deal-{quote.id}"]
    ids += (renewal_workflow_id(prefix, sub) for sub in session.scalars(
        select(Subscription.id).where(Subscription.deal_id == deal_id).order_by(Subscription.id)))
    return list(dict.fromkeys(ids))


__all__ = ["deal_of", "workflow_ids_of"]
