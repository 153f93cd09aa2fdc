"""Every workflow class dealdesk runs: the worker registers exactly these, and the replay
check (``workflows/replay_check.py``) replays histories with the same list."""

from __future__ import annotations

from workflows.approval_chain import ApprovalChainWorkflow
from workflows.billing import BillingWorkflow
from workflows.deal import DealWorkflow
from workflows.envelope import EnvelopeWorkflow
from workflows.health import HealthRecomputeWorkflow
from workflows.proposal import ProposalWorkflow
from workflows.renewal import RenewalWorkflow
from workflows.rfp_response import RfpResponseWorkflow

WORKFLOWS: list[type] = [
    ApprovalChainWorkflow, EnvelopeWorkflow, BillingWorkflow, RfpResponseWorkflow,
    ProposalWorkflow, HealthRecomputeWorkflow, RenewalWorkflow, DealWorkflow]
