"""ProposalWorkflow's activities: project its review into the store, and make the final PDF.

Both are idempotent: audit rows are keyed by the workflow's event keys, a snapshot older
than the one stored writes only those, and the final PDF is made once per version (a retry
finds its hash stored and returns it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload, sessionmaker
from temporalio import activity

from activities.approvals import record_actor
from activities.envelopes import heartbeating
from store import audit
from store.audit import entity
from store.blobs import BlobStore
from store.db import write_lock
from store.proposals import Proposal, ProposalStep, ProposalTask, ProposalVersion
from store.who import Who
from workflows.proposal import (
    FINALIZE_PROPOSAL,
    PROJECT_PROPOSAL,
    FinalizeInput,
    ProposalSnapshot,
)

Convert = Callable[[bytes, str], bytes]
PROPOSAL_STATUS = {"approved": "approved", "changes_requested": "changes_requested",
                   "rejected": "rejected", "recalled": "draft",
                   "cancelled": "draft"}


class ProposalActivities:
    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore,
                 convert_docx: Convert) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._convert = convert_docx

    @activity.defn(name=PROJECT_PROPOSAL)
    def project_proposal(self, snap: ProposalSnapshot) -> None:
        with self._sessions() as s:
            write_lock(s)
            _project(s, snap)
            s.commit()

    @activity.defn(name=FINALIZE_PROPOSAL)
    def finalize_proposal(self, inp: FinalizeInput) -> str:
        """The approved version's DOCX as the final PDF, stored by hash; the proposal final."""
        with self._sessions() as s:
            version = _version(s, inp.proposal_id, inp.version)
            if version.pdf_sha256:
                return version.pdf_sha256
        with heartbeating():
            pdf = self._convert(self._blobs.get(inp.docx_sha256),
                                f"proposal-{inp.proposal_id}-v{inp.version}.docx")
        digest = self._blobs.put(pdf)
        with self._sessions() as s:
            write_lock(s)
            version = _version(s, inp.proposal_id, inp.version)
            if version.pdf_sha256 is None:
                version.pdf_sha256, version.status = digest, "final"
                proposal = s.get(Proposal, inp.proposal_id, options=[lazyload("*")])
                if proposal is not None and proposal.version == inp.version \
                        and proposal.status == "approved":
                    proposal.status, proposal.updated_at = "final", dt.datetime.now(dt.UTC)
                audit.append(s, event_key=f"{version.workflow_id}#final",
                             actor=Who.system("worker:finalize_proposal"),
                             action="proposal.finalized", entity=entity("proposal",
                                                                        inp.proposal_id),
                             data={"version": inp.version, "pdf_sha256": digest,
                                   "docx_sha256": inp.docx_sha256})
            s.commit()
            return version.pdf_sha256 or digest


def _version(s: Session, proposal_id: int, number: int) -> ProposalVersion:
    version = s.scalar(select(ProposalVersion).where(ProposalVersion.proposal_id == proposal_id,
                                                     ProposalVersion.version == number))
    if version is None:  # the submission commits it before the workflow can start
        raise LookupError(f"no version {number} of proposal {proposal_id} in the store")
    return version


def _project(s: Session, snap: ProposalSnapshot) -> None:
    version = s.scalar(select(ProposalVersion).where(
        ProposalVersion.workflow_id == snap.workflow_id).with_for_update())
    if version is None:
        raise LookupError(f"no proposal version for {snap.workflow_id} in the store")
    for ev in snap.events:
        audit.append(s, event_key=ev.key, actor=record_actor(ev), action=ev.action,
                     entity=entity("proposal", snap.proposal_id),
                     data={**ev.data, "workflow_id": snap.workflow_id}, at=ev.at)
    if snap.revision <= version.revision:
        return  # an older snapshot arriving late: its audit rows are in, state is not
    version.revision, version.completed_at = snap.revision, snap.completed_at
    if version.status != "final":
        version.status = snap.status if snap.status != "running" else "in_review"
    steps = {st.key: st for st in version.steps}
    for step in snap.steps:
        row = steps.get(step.key)
        if row is None:
            row = ProposalStep(key=step.key, name=step.name, position=step.position,
                               reasons=step.reasons, fingerprint=step.fingerprint)
            version.steps.append(row)
        row.state, row.due_at, row.completed_at = step.state, step.due_at, step.completed_at
        if step.carried_from is not None:
            c = step.carried_from
            row.carried_from = {"decided_by": c.decided_by,
                                "decided_at": c.decided_at.isoformat(),
                                "version": c.quote_version, "workflow_id": c.workflow_id}
    names = {st.key: st.name for st in snap.steps}
    existing = {t.id: t for t in s.scalars(select(ProposalTask).where(
        ProposalTask.proposal_id == snap.proposal_id, ProposalTask.version == snap.version))}
    for task in snap.tasks:
        t_row = existing.get(task.id) or ProposalTask(
            id=task.id, proposal_id=snap.proposal_id, version=snap.version,
            step_key=task.step_key, step_name=names[task.step_key], created_at=task.created_at)
        if task.id not in existing:
            s.add(t_row)
        t_row.queue_role, t_row.assignee_id = task.queue_role, task.assignee_id
        t_row.assignee_name = task.assignee_name
        t_row.on_behalf_of_name = task.on_behalf_of_name
        t_row.state, t_row.decided_by_name = task.state, task.decided_by_name
        t_row.decided_at, t_row.comment = task.decided_at, task.comment
        t_row.due_at = task.due_at
    # Only the version under review moves the proposal, and only while it is in review: an
    # edit since (a new draft version) wins over a snapshot that arrives after it.
    proposal = s.get(Proposal, snap.proposal_id, options=[lazyload("*")])
    if proposal is not None and proposal.version == snap.version \
            and proposal.status == "in_review" and snap.status in PROPOSAL_STATUS:
        proposal.status = PROPOSAL_STATUS[snap.status]
        proposal.updated_at = dt.datetime.now(dt.UTC)
