"""A contract with 2,000 history events: its timeline, its replay check and its evidence bundle.

    .venv/bin/python -m bench.audit [--events 2000] [--runs 5]

(The other half of ``bench.audit``, an inclusion proof in a 1,000,000-row log, is
``python -m bench.audit_proof``.)

Starts its own Temporal dev server, a migrated temp SQLite store and ``dealdesk worker`` +
``dealdesk web`` as processes (as ``dealdesk up`` runs them). It makes one real deal: a quote,
approved, sent as a two-signer envelope; the envelope's signers are reminded (each reminder an
Update, a mail activity and an audit row) until the deal's workflow runs hold ``--events``
Temporal history events together, then both sign and it is sealed. (Its timeline, which also
lists the audit rows but not the engine's bookkeeping events, is printed beside.) Then, as the
auditor, each ``--runs`` times:

- **timeline**: ``GET /deals/{id}/history``, the whole timeline page (target < 1 s);
- **replay**: ``GET /deals/{id}/history/replay``, every run replayed on today's code
  (target < 2 s);
- **bundle**: ``GET /api/v1/deals/{id}/evidence``, the signed zip (target < 5 s).

Baselines in the same run, in the bench's process: the deal's audit rows read with one SQL
query and its histories read from Temporal (what the timeline must read anyway); temporalio's
Replayer over those same histories (what the replay must do anyway); and zipping the bundle's
own files again (what any export of those bytes costs). Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
import zipfile
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from bench._common import (
    bench_settings,
    deployed,
    finish,
    machine_note,
    pct,
    summary,
    temp_root,
    temporal_server,
    verdict,
)
from dealdesk.runtime import connect
from store.db import make_engine, make_session_factory
from store.deals import Deal
from store.migrate import upgrade
from tests.order_forms import send_order_form, sign_in_turn
from tests.web_support import People, seed_people, token_client
from web.services import deal_history, deals, histories
from workflows.replay_check import replay

TARGETS = {"timeline": 1.0, "replay": 2.0, "bundle": 5.0}


async def history_events(client: Client, sessions: sessionmaker[Session], prefix: str,
                         deal_id: int) -> int:
    runs = await histories.deal_histories(client, sessions, prefix, deal_id)
    return sum(len(run.history.events) for run in runs)


async def signed_deal(rep: httpx.AsyncClient, people: People, sessions: sessionmaker[Session],
                      client: Client, prefix: str, events: int) -> tuple[int, int]:
    deal_id, eid = await send_order_form(rep, people, sessions, "Audit")
    while True:
        made = await history_events(client, sessions, prefix, deal_id)
        print(f"  {made} history events")
        if made >= events - 60:  # the signatures and the seal add the rest
            break
        for _ in range(max(1, (events - made) // 100)):  # ~10 events a reminder
            await asyncio.gather(*(rep.post(f"/api/v1/envelopes/{eid}/remind")
                                   for _ in range(10)))
    await sign_in_turn(sessions, client, eid, people)
    return deal_id, eid


async def timed(fn: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


async def main(events: int, runs: int) -> None:
    print(machine_note("start"))
    with temp_root("dealdesk-audit-") as root, temporal_server(root) as server:
        url_db = f"sqlite:///{root / 'dealdesk.db'}"
        upgrade(url_db)
        settings = bench_settings(root, url_db, server.address)
        engine = make_engine(url_db)
        sessions = make_session_factory(engine)
        people = seed_people(sessions)
        client = await connect(settings)
        async with deployed(settings) as url:
            rep, auditor = [await token_client(url, u) for u in (people.rep, people.auditor)]
            print("making the contract:")
            deal_id, _ = await signed_deal(rep, people, sessions, client,
                                           settings.workflow_prefix, events)
            r = await auditor.get(f"/api/v1/deals/{deal_id}/history")
            timeline = r.json()["timeline"]
            runs_recorded = await histories.deal_histories(
                client, sessions, settings.workflow_prefix, deal_id)
            events = sum(len(run.history.events) for run in runs_recorded)
            print(f"the contract: {len(timeline)} timeline entries, {len(runs_recorded)} "
                  f"workflow runs with {events} Temporal events")

            async def page() -> None:
                r = await auditor.get(f"/deals/{deal_id}/history")
                assert r.status_code == 200 and "Timeline" in r.text

            async def replayed() -> None:
                r = await auditor.get(f"/deals/{deal_id}/history/replay",
                                      headers={"HX-Request": "true"})
                assert r.status_code == 200 and "replay on today" in r.text, r.text[:300]

            bundles: list[bytes] = []

            async def bundle() -> None:
                r = await auditor.get(f"/api/v1/deals/{deal_id}/evidence")
                assert r.status_code == 200
                bundles.append(r.content)

            def read_rows() -> None:
                with sessions() as s:
                    deal = s.get_one(Deal, deal_id)
                    deal_history.audit_rows(s, deal_id, deals.linked(s, deal))

            async def baseline_reads() -> None:
                await asyncio.to_thread(read_rows)
                await histories.deal_histories(client, sessions, settings.workflow_prefix,
                                               deal_id)

            async def baseline_replay() -> None:
                await replay([run.history for run in runs_recorded])

            def rezip() -> None:
                with zipfile.ZipFile(io.BytesIO(bundles[-1])) as z:
                    files = {n: z.read(n) for n in z.namelist()}
                out = io.BytesIO()
                with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
                    for n, data in files.items():
                        z.writestr(n, data)

            async def baseline_zip() -> None:
                await asyncio.to_thread(rezip)

            await page()  # warm
            measured = {"timeline": await timed(page, runs),
                        "replay": await timed(replayed, runs),
                        "bundle": await timed(bundle, runs)}
            baselines = {"timeline": await timed(baseline_reads, runs),
                         "replay": await timed(baseline_replay, runs),
                         "bundle": await timed(baseline_zip, runs)}
            size = len(bundles[-1])
            for c in (rep, auditor):
                await c.aclose()
        engine.dispose()

    print()
    for name, samples in measured.items():
        base = baselines[name]
        print(summary(name, samples))
        print(summary(f"  baseline ({name})", base))
        print(f"  p95 {pct(samples, 95):.0f} ms, {pct(samples, 95) / pct(base, 95):.1f}x its "
              f"baseline; target < {TARGETS[name]:.0f} s: "
              f"{verdict(pct(samples, 95) / 1000 < TARGETS[name])}")
    print(f"bundle size: {size / 1024:.0f} KiB")
    print(machine_note("end"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(main(args.events, args.runs))
    finish()
