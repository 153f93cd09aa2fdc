"""The real parts built from the settings (the PKI, SMTP, webhook endpoints), shared by the
worker, the web app and the CLI. Kept apart from dealdesk/worker.py so the web app doesn't
import the Temporal worker and every activity just to open the PKI."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from activities.mail import SmtpConfig
from activities.webhooks import WebhookEndpoint
from dealdesk.settings import Settings
from documents.pki import Pki


def smtp_config(settings: Settings) -> SmtpConfig | None:
    if not settings.smtp_host:
        return None
    return SmtpConfig(settings.smtp_host, settings.smtp_port, settings.smtp_username,
                      settings.smtp_password, settings.smtp_starttls, settings.smtp_from)


def open_pki(settings: Settings) -> Pki:
    return Pki(settings.pki_dir, settings.pki_passphrase, org_name=settings.org_name,
               base_url=settings.base_url)


def webhook_endpoints(settings: Settings) -> list[WebhookEndpoint]:
    """The configured URLs, named ``webhook-1``, ``webhook-2``… (names, never URLs, travel
    through workflow histories and logs)."""
    return [WebhookEndpoint(f"webhook-{n}", url, settings.webhook_secret.encode())
            for n, url in enumerate(settings.webhook_urls, start=1)]


def tree_head_signer(settings: Settings, *, only_if_grown: bool = True
                     ) -> Callable[[Session], object]:
    """Issues the audit log's signed tree head (web/services/transparency.py) with the
    configured seal (file key or HSM) and TSA: the worker's hourly call, the CLI's on demand."""
    from documents.hsm import HsmSeal
    from documents.timestamps import timestamper
    from web.services.transparency import issue_tree_head

    pki = open_pki(settings)
    hsm = HsmSeal(pki, settings.hsm) if settings.hsm else None
    tsa = timestamper(pki, settings.tsa_url)
    return lambda session: issue_tree_head(session, pki, tsa, only_if_grown=only_if_grown,
                                           seal=hsm.signer if hsm else None)
