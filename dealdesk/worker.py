"""Building the Temporal worker with its activities wired to the store and mail."""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.billing import BillingActivities
from activities.deals import DealActivities
from activities.envelopes import EnvelopeActivities
from activities.health import HealthActivities
from activities.mail import Mailer
from activities.proposals import ProposalActivities
from activities.renewals import RenewalActivities
from activities.rfps import RfpActivities
from activities.webhooks import WebhookActivities
from dealdesk.parts import open_pki, smtp_config, webhook_endpoints
from dealdesk.renewal_steps import RenewalSteps
from dealdesk.settings import Settings
from documents.convert import DEFAULT_UNO_VENV, Converter
from documents.hsm import HsmSeal
from store.blobs import BlobStore
from workflows.registry import WORKFLOWS

CONVERT_TIMEOUT_S = 900  # a 400-page Word document takes minutes; the activity heartbeats


def open_converter(settings: Settings) -> Converter:
    """A warm LibreOffice of this process's own (its profile in a private temp dir, so several
    workers on one machine never share one); started on the first conversion."""
    return Converter(uno_venv=settings.uno_venv or DEFAULT_UNO_VENV,
                     convert_timeout=CONVERT_TIMEOUT_S)


def build_worker(client: Client, settings: Settings, sessions: sessionmaker[Session],
                 task_queue: str | None = None, converter: Converter | None = None) -> Worker:
    """The worker with every workflow and activity. Without a ``converter`` it makes one,
    closed when the worker is garbage collected."""
    own_converter = converter is None
    converter = converter or open_converter(settings)
    blobs = BlobStore(settings.blob_dir)
    mailer = Mailer(sessions, smtp_config(settings), blobs)
    approvals = ApprovalActivities(sessions, mailer, settings.base_url)
    pki = open_pki(settings)
    hsm = HsmSeal(pki, settings.hsm) if settings.hsm else None
    envelopes = EnvelopeActivities(
        sessions, mailer, blobs, pki, settings.base_url, settings.tsa_url,
        tuple(settings.distribution_emails), seal_signer=hsm.signer if hsm else None,
        convert_docx=lambda data, name: converter.convert(data, filename=name),
        max_upload_bytes=settings.max_upload_mb * 1024 * 1024,
        task_queue=task_queue or settings.task_queue,
        workflow_prefix=settings.workflow_prefix)
    webhooks = WebhookActivities(webhook_endpoints(settings))
    billing = BillingActivities(sessions, blobs, settings.org_name)
    rfps = RfpActivities(sessions, settings.base_url, mailer)
    health = HealthActivities(sessions, settings.base_url, mailer)
    renewals = RenewalActivities(sessions, mailer, settings.base_url)
    deals = DealActivities(sessions)
    renewal_steps = RenewalSteps(client, sessions, settings, blobs,
                                 lambda data, name: converter.convert(data, filename=name))
    proposals = ProposalActivities(sessions, blobs,
                                   lambda data, name: converter.convert(data, filename=name))
    worker = Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=[approvals.project_chain, approvals.resolve_seats,
                    approvals.resolve_escalations, approvals.notify,
                    envelopes.prepare_envelope, envelopes.invite_recipients,
                    envelopes.apply_signature, envelopes.record_approval,
                    envelopes.seal_envelope, envelopes.record_outcome,
                    webhooks.deliver_webhook, billing.issue_invoice,
                    rfps.notify_rfp_sme, proposals.project_proposal,
                    proposals.finalize_proposal, health.recompute_health,
                    renewals.renewal_plan, renewals.remind_renewal,
                    renewals.make_renewal_quote, renewals.close_term,
                    renewals.change_subscription_term, renewals.cancel_subscription,
                    renewals.add_subscription_addon, deals.move_deal,
                    deals.close_lost_deal, renewal_steps.advance_renewal_quote,
                    renewal_steps.advance_renewal_deal],
        # Store, SMTP and (later) document libraries block: run them on threads.
        activity_executor=ThreadPoolExecutor(max_workers=16),
        max_concurrent_activities=16,
        # After a worker dies, its sticky queue holds tasks this long before another takes them.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        graceful_shutdown_timeout=timedelta(seconds=5),
    )
    if own_converter:
        weakref.finalize(worker, converter.close)
    return worker
