"""Activities of RfpResponseWorkflow: remind subject-matter experts of the RFP questions they
hold, and tell the RFP's owner about those overdue."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.mail import Mailer
from store import audit
from store.audit import entity
from store.db import write_lock
from store.models import OutboxMessage, User
from store.rfps import Rfp, RfpQuestion
from store.who import Who
from workflows.rfp_response import NOTIFY_ACTIVITY, NotifyInput, NotifyResult, Step

ANSWERED = ("answered", "approved")


class RfpActivities:
    def __init__(self, sessions: sessionmaker[Session], base_url: str,
                 mailer: Mailer | None = None) -> None:
        self._sessions = sessions
        self._base_url = base_url
        self._mailer = mailer

    @activity.defn(name=NOTIFY_ACTIVITY)
    def notify_rfp_sme(self, inp: NotifyInput) -> NotifyResult:
        """Idempotent: one audit row and one mail per (RFP, step, question), keyed by them."""
        with self._sessions() as s:
            write_lock(s)
            rfp = s.get(Rfp, inp.rfp_id)
            if rfp is None or rfp.status in ("recalled", "completed"):
                return NotifyResult([], recalled=True)
            wanted = set(inp.question_ids)
            still = [q for q in rfp.questions if q.id in wanted and q.status not in ANSWERED]
            if inp.step == Step.REMIND:
                groups: dict[int, list[RfpQuestion]] = defaultdict(list)
                for q in still:
                    if q.assignee_id is not None:
                        groups[q.assignee_id].append(q)
                for user_id, qs in groups.items():
                    self._tell(s, rfp, s.get(User, user_id), qs, inp.step)
            elif still:
                self._tell(s, rfp, rfp.owner, still, inp.step)
            s.commit()
        if self._mailer is not None:
            self._mailer.deliver_unsent(f"rfp-{inp.rfp_id}-{inp.step}-")
        return NotifyResult([q.id for q in still])

    def _tell(self, s: Session, rfp: Rfp, to: User | None, qs: list[RfpQuestion],
              step: Step) -> None:
        if to is None:
            return
        key = f"rfp-{rfp.id}-{step}-" + "-".join(str(q.id) for q in qs)
        row = audit.append(s, event_key=key, actor=Who.system("rfp-response"),
                           action=f"rfp.sme_{step}", entity=entity("rfp", rfp.id),
                           data={"to": to.email, "question_ids": [q.id for q in qs]})
        if row is None:
            return
        lines = "\n".join(f"- {q.text[:200]}" for q in qs)
        subject = (f"Reminder: {len(qs)} RFP question(s) due for {rfp.title}"
                   if step == Step.REMIND else
                   f"Overdue: {len(qs)} RFP question(s) unanswered in {rfp.title}")
        s.add(OutboxMessage(message_key=key, to_addr=to.email, subject=subject[:300],
                            body=f"{lines}\n\nAnswer them at {self._base_url}/rfps/{rfp.id}\n"))
