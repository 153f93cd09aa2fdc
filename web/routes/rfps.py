"""The RFP workspace's pages (the use cases are web/services/rfps.py)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
