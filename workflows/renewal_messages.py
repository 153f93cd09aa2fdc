"""RenewalWorkflow's input, update, query and activity payloads, as frozen dataclasses.

Dates are ISO strings (``YYYY-MM-DD``); money is integer minor units; percentages are decimal
strings ("3", "2.5").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenewalInput:
    subscription_id: int
    term_number: int
    """The term this run watches; the next term is a new run (continue-as-new)."""


@dataclass(frozen=True)
class TermPlan:
    """What a run needs to know about its term (read from the store by ``renewal_plan``)."""

    subscription_id: int
    term_number: int
    status: str
    renews_on: str
    """The day after the term's last day: the renewal takes effect then."""
    reminder_days: list[int]
    """Days before ``renews_on`` at which the owner is reminded, largest first."""
    quote_days: int
    """Days before ``renews_on`` at which the renewal quote is made."""
    renewal_quote_id: int | None
    term_end_action: str = "renew"


@dataclass(frozen=True)
class ChangeTerm:
    """Change the current term: its last day, the notice period, the term-end action, the
    uplift or the renewal pricing method; a field left None stays."""

    by_user_id: int
    term_end: str | None = None
    notice_days: int | None = None
    term_end_action: str | None = None
    uplift_pct: str | None = None
    renewal_pricing: str | None = None
    """``cpq.renewal.RENEWAL_METHODS``; checked by the activity (and the web tier before)."""


@dataclass(frozen=True)
class Cancel:
    """Cancel at the end of the current term (it churns then); needs a reason."""

    by_user_id: int
    reason: str


@dataclass(frozen=True)
class RenewEarly:
    """Renew now: the current term ends today as renewed, and the next one (uplifted) starts
    today."""

    by_user_id: int


@dataclass(frozen=True)
class AddOn:
    """An add-on co-terminated with the current term: ``arr_delta`` joins the ARR, and the
    first charge is prorated to the term's end. ``key`` makes a retried request a no-op."""

    by_user_id: int
    description: str
    arr_delta: int
    key: str


@dataclass(frozen=True)
class RenewalState:
    """What the ``state`` query and every update return."""

    subscription_id: int
    term_number: int
    status: str
    renews_on: str
    next_reminder_on: str | None
    renewal_quote_id: int | None
    reminders_sent: list[int]
    """The reminder offsets (days) already sent this term."""


INVALID = "RenewalInvalid"
"""An update's input the subscription can't take (a notice period longer than the term, a
term end before its start, an unknown action): the web answers 422 with the message."""
ENDED = "RenewalEnded"
"""The subscription has churned: nothing to change any more (409)."""


# --- activity payloads (activities/renewals.py) ----------------------------------------


@dataclass(frozen=True)
class TermInput:
    subscription_id: int
    term_number: int
    today: str = ""


@dataclass(frozen=True)
class RemindInput:
    subscription_id: int
    term_number: int
    days_before: int


@dataclass(frozen=True)
class ChangeInput:
    subscription_id: int
    term_number: int
    change: ChangeTerm


@dataclass(frozen=True)
class CancelInput:
    subscription_id: int
    term_number: int
    cancel: Cancel


@dataclass(frozen=True)
class AddOnInput:
    subscription_id: int
    term_number: int
    add_on: AddOn
    today: str


@dataclass(frozen=True)
class Closed:
    outcome: str
    next_term: int | None
    """None when the subscription churned."""
