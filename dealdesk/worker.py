"""Building the Temporal worker with its activities wired to the store and mail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.mail import Mailer, SmtpConfig
from dealdesk.settings import Settings
from workflows.approval_chain import ApprovalChainWorkflow

WORKFLOWS = [ApprovalChainWorkflow]


def smtp_config(settings: Settings) -> SmtpConfig | None:
    if not settings.smtp_host:
        return None
    return SmtpConfig(settings.smtp_host, settings.smtp_port, settings.smtp_username,
                      settings.smtp_password, settings.smtp_starttls, settings.smtp_from)


def build_worker(client: Client, settings: Settings, sessions: sessionmaker[Session],
                 task_queue: str | None = None) -> Worker:
    mailer = Mailer(sessions, smtp_config(settings))
    approvals = ApprovalActivities(sessions, mailer, settings.base_url)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=[approvals.project_chain, approvals.resolve_seats,
                    approvals.resolve_escalations, approvals.notify],
        # Store, SMTP and (later) document libraries block: run them on threads.
        activity_executor=ThreadPoolExecutor(max_workers=16),
        max_concurrent_activities=16,
        # After a worker dies, its sticky queue holds tasks this long before another takes them.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        graceful_shutdown_timeout=timedelta(seconds=5),
    )
