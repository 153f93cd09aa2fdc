"""Contracts from the shipped contract templates: the Common Paper Order Form and Mutual NDA
(CC BY 4.0), filled in with a deal's and its quote's facts.

The templates in ``documents/contract_templates/`` are derived from the originals by
``scripts/make_contract_templates.py`` (what changes is written there): the originals' text,
styles, header and licence footer, docxtpl tags for our facts, the attribution at the end,
and a signature table whose "Signature" row holds ``[[sign:provider]]`` and
``[[sign:customer]]`` with room below each for the field ``documents.placement`` puts there.

Rendering is ``documents.section_template.render`` (docxtpl in Jinja's immutable sandbox,
undefined names are errors), in ``documents.sandbox``'s child process like a proposal's
assembly; the DOCX then goes to the warm converter (``documents.convert``) like any other.
Equal facts give equal bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpq.money import MoneyError, major
from documents import sandbox, section_template
from documents.assembly import long_date, plain_text

TEMPLATE_DIR = Path(__file__).resolve().parent / "contract_templates"
CUSTOMER_ANCHOR, PROVIDER_ANCHOR = "customer", "provider"
"""The labels of the templates' ``[[sign:…]]`` anchors."""


@dataclass(frozen=True)
class ContractTemplate:
    key: str
    """What callers name it by: ``order_form``, ``mutual_nda``."""
    title: str
    """What the document is called, e.g. "Order Form"."""
    file: str
    attribution: str
    """The licence's attribution, which every document made from it carries."""
    wins: bool = True
    """Signing it wins the quote it is made from (an order form); an NDA wins nothing."""

    def data(self) -> bytes:
        return (TEMPLATE_DIR / self.file).read_bytes()


TEMPLATES: dict[str, ContractTemplate] = {t.key: t for t in (
    ContractTemplate("order_form", "Order Form", "order-form.docx",
                     "Based on the Common Paper Order Form, available at "
                     "https://commonpaper.com. Licensed under CC BY 4.0. Copyright Common "
                     "Paper, Inc."),
    ContractTemplate("mutual_nda", "Mutual NDA", "mutual-nda.docx",
                     "Based on the Common Paper Mutual NDA, available at "
                     "https://commonpaper.com. Licensed under CC BY 4.0. Copyright Common "
                     "Paper, Inc.", wins=False),
)}
DEFAULT_TEMPLATE = "order_form"

BILLING_WORDS = {"annual": "annually in advance",
                 "one_time": "once, on the Order Date"}
"""How each billing mode of a quote (``cpq.billing``) reads in "Provider will invoice
Customer …"."""

# The Mutual NDA's choices (Common Paper's own suggestions where it makes them).
NDA_PURPOSE = ("Evaluating whether to enter into a business relationship with the other "
               "party.")
NDA_TERM = "1 year"
NDA_GOVERNING_LAW = "Delaware"
NDA_JURISDICTION = "New Castle County, Delaware"


class ContractError(ValueError):
    """The contract can't be made from these facts; the message says why."""


@dataclass(frozen=True)
class Party:
    """One signer: who signs for a party, and where notices go."""

    name: str
    title: str
    email: str


@dataclass(frozen=True)
class FeeLine:
    name: str
    quantity: int
    net_total: int
    """Minor units of the contract's currency."""


@dataclass(frozen=True)
class ContractFacts:
    """What a contract says, read from the deal and its quote."""

    provider: str
    """Our company's name."""
    customer: str
    """The account's name."""
    reference: str
    """The quote it is made from, e.g. "Q-12 v2"."""
    effective: dt.date
    term_months: int
    currency: str
    net_total: int
    """The quote's net total, minor units."""
    lines: tuple[FeeLine, ...]
    billing: str
    """The quote's billing mode (``cpq.billing.BILLING_MODES``)."""
    payment_terms_days: int
    notice_days: int
    uplift_pct: str
    other_changes: tuple[str, ...]
    """The quote's agreed non-standard terms."""
    customer_signer: Party
    provider_signer: Party


def money(minor: int, currency: str) -> str:
    try:
        return f"{currency}\u00a0{major(minor, currency)}"
    except MoneyError as e:
        raise ContractError(str(e)) from e


def context(template: str, f: ContractFacts) -> dict[str, Any]:
    """The template's fields, filled in from ``f``."""
    if template not in TEMPLATES:
        raise ContractError(f"no contract template {template!r}")
    common: dict[str, Any] = {
        "provider_name": f.provider, "customer_name": f.customer,
        "effective_date": long_date(f.effective),
        "provider_signer_name": f.provider_signer.name,
        "provider_signer_title": f.provider_signer.title,
        "provider_signer_email": f.provider_signer.email,
        "customer_signer_name": f.customer_signer.name,
        "customer_signer_title": f.customer_signer.title,
        "customer_signer_email": f.customer_signer.email,
        "other_changes": "; ".join(f.other_changes) + "." if f.other_changes else "None.",
    }
    if template == "mutual_nda":
        return {**common, "purpose": NDA_PURPOSE, "mnda_term": NDA_TERM,
                "confidentiality_term": NDA_TERM, "confidentiality_term_start": "Effective Date",
                "governing_law": NDA_GOVERNING_LAW, "jurisdiction": NDA_JURISDICTION}
    names = list(dict.fromkeys(line.name for line in f.lines))
    months = f"{f.term_months} month" + ("s" if f.term_months != 1 else "")
    return {**common,
            "cloud_service": ", ".join(names) or f.reference,
            "subscription_period": months,
            "fees": money(f.net_total, f.currency),
            "fee_unit": f"Subscription Period (quote {f.reference}), made up of:",
            "fee_lines": [f"{line.name} × {line.quantity:,}: "
                          f"{money(line.net_total, f.currency)}" for line in f.lines],
            "uplift_pct": f.uplift_pct,
            "payment_frequency": BILLING_WORDS.get(f.billing, f.billing.replace("_", " ")),
            "payment_terms_days": str(f.payment_terms_days),
            "payment_due_from": "Customer's receipt of invoice",
            "notice_days": str(f.notice_days)}


def _plain(value: Any) -> Any:
    """Text without the control characters XML can't hold, in lists too."""
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render(template: str, facts: ContractFacts) -> bytes:
    """The contract as DOCX bytes."""
    t = TEMPLATES.get(template)
    if t is None:
        raise ContractError(f"no contract template {template!r}")
    fields = {k: _plain(v) for k, v in context(template, facts).items()}
    try:
        return section_template.render(t.data(), fields, t.title)
    except section_template.SectionTemplateError as e:
        raise ContractError(str(e)) from e


RENDER_LIMITS = sandbox.Limits(seconds=30, memory_mb=512)


def render_isolated(template: str, facts: ContractFacts, *,
                    limits: sandbox.Limits = RENDER_LIMITS) -> bytes:
    """:func:`render` in ``documents.sandbox``'s child (blocking: call it on a thread)."""
    try:
        return sandbox.run(render, template, facts, limits=limits)
    except sandbox.SandboxError as e:
        raise ContractError(f"making the contract overran its {e.limit} limit ({e})") from e
