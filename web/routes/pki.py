"""What the internal PKI publishes: CA certificates, CRLs (the URLs inside every certificate
point here) and the RFC 3161 timestamp authority. Public, as CRLs and TSAs are."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from documents.timestamps import InternalTimeStamper, TimestampRequestError
from web.errors import Invalid, TooLarge

router = APIRouter(include_in_schema=False)
MAX_TSA_REQUEST = 8 * 1024


@router.get("/pki/{which}.crl")
async def crl(request: Request, which: Literal["root", "issuing"]) -> Response:
    data = await asyncio.to_thread(request.app.state.pki.crl, which)
    return Response(data, media_type="application/pkix-crl",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/pki/{which}.crt")
def ca_cert(request: Request, which: Literal["root", "issuing"]) -> Response:
    return Response(request.app.state.pki.ca_cert_der(which), media_type="application/pkix-cert",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.post("/tsa")
async def timestamp(request: Request) -> Response:
    """RFC 3161 over HTTP: a DER TimeStampReq in, a DER TimeStampResp out."""
    if request.headers.get("content-type") != "application/timestamp-query":
        raise Invalid("send a DER TimeStampReq with Content-Type: application/timestamp-query")
    body = await request.body()
    if len(body) > MAX_TSA_REQUEST:
        raise TooLarge("a timestamp request is a few hundred bytes; this one is too large")
    tsa: InternalTimeStamper = request.app.state.tsa
    try:
        reply = await asyncio.to_thread(tsa.respond, body)
    except TimestampRequestError as e:
        raise Invalid(str(e)) from None
    return Response(reply, media_type="application/timestamp-reply")
