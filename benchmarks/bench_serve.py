"""Load on `recagent serve`: async HTTP clients, all at once, a bounded number of requests.

Starts `recagent serve` on a free loopback port over HOME (MovieLens 100K ingested, as
after `make demo`), then `--clients` clients send `POST /v1/recommend` until `--requests`
have been answered. Histories are 1-5 liked movies of seeded random MovieLens users.
Prints throughput, latency p50/p95/p99, the share of degraded answers (by reason), the
errors by status, and invalid items (outside the catalog, in the history, repeated, or
unexplained). In the same run, the same clients then send as many requests that fail
validation (an empty history: 422 before any work): the web stack's own floor, and the
recommendation's throughput as a share of it. The queue is made deep enough for every
client, so each request is answered within its deadline (degraded when the LLM could not
answer in time):

    .venv/bin/python benchmarks/bench_serve.py --home HOME --no-llm --clients 16 --workers 2
    .venv/bin/python benchmarks/bench_serve.py --home HOME --model smollm2-135m --deadline 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from bench_recommend import liked_in_time


def histories(ratings: Path, n: int, seed: int) -> list[list[str]]:
    liked = liked_in_time(ratings)
    rng = random.Random(seed)
    users = sorted(liked, key=int)
    return [[item for _, item in sorted(liked[u])[:rng.randint(1, 5)]]
            for u in (rng.choice(users) for _ in range(n))]


def catalog_ids(items: Path) -> set[str]:
    return {line.split("|", 1)[0] for line in items.read_text(encoding="latin-1").splitlines()
            if line.strip()}


def problems(body: dict[str, Any], history: list[str], known: set[str]) -> int:
    ids = [i["item_id"] for i in body["items"]]
    bad = len(ids) - len(set(ids))
    bad += sum(1 for i in body["items"] if i["item_id"] not in known
               or i["item_id"] in history or not i["explanation"].strip())
    bad += int(body["degraded"] and not body["degraded_reason"])
    return bad


def start(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "recagent.cli", "serve", "--home", str(args.home),
           "--port", str(port), "--deadline", str(args.deadline),
           "--max-in-flight", str(args.max_in_flight),
           "--queue-depth", str(max(args.clients, args.queue_depth))]
    cmd += ["--workers", str(args.workers)] if args.workers > 1 else []
    cmd += ["--no-llm"] if args.no_llm else ["--model", args.model]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=None if args.verbose else subprocess.DEVNULL)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < 600:
        if proc.poll() is not None:
            raise SystemExit(f"recagent serve exited with {proc.returncode} (--verbose shows why)")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return time.perf_counter() - began
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("recagent serve did not get ready within 600 s")


async def load(args: argparse.Namespace, url: str, proc: subprocess.Popen[bytes],
               work: list[list[str]], known: set[str]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, limits=limits,
                                 timeout=args.deadline + 60) as client:
        startup = await wait_ready(client, proc)
        await client.post("/v1/recommend", json={"history": [{"item_id": work[0][0]}],
                                                 "k": args.k})  # warm-up, not counted
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        invalid = 0
        todo = iter(work)

        async def one_client() -> None:
            nonlocal invalid
            for history in todo:
                body = {"history": [{"item_id": i, "liked": True} for i in history],
                        "k": args.k}
                began = time.perf_counter()
                try:
                    r = await client.post("/v1/recommend", json=body)
                except httpx.HTTPError as e:
                    statuses[type(e).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - began)
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    got = r.json()
                    invalid += problems(got, history, known)
                    reasons[got["degraded_reason"] or "ok"] += 1

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(args.clients)))
        wall = time.perf_counter() - began
        floor = await validation_floor(client, args.clients, len(work))
    answered = sum(reasons.values())
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "llm": "none (--no-llm)" if args.no_llm else args.model, "clients": args.clients,
        "requests": len(work), "startup_s": round(startup, 1), "wall_s": round(wall, 1),
        "throughput_rps": round(len(work) / wall, 2),
        "p50_s": round(q[49], 4), "p95_s": round(q[94], 4), "p99_s": round(q[98], 4),
        "max_s": round(max(latencies, default=0.0), 3),
        "over_deadline": sum(1 for t in latencies if t > args.deadline),
        "degraded_share": round(1 - reasons["ok"] / answered, 3) if answered else None,
        "degraded_reasons": {k: v for k, v in reasons.items() if k != "ok"},
        "statuses": dict(statuses), "errors": sum(v for k, v in statuses.items() if k != "200"),
        "invalid_items": invalid, "deadline_s": args.deadline, "workers": args.workers,
        "floor_rps": floor["rps"], "floor_p99_s": floor["p99_s"],
        "share_of_floor": round(len(work) / wall / floor["rps"], 3) if floor["rps"] else None,
    }


async def validation_floor(client: httpx.AsyncClient, clients: int, n: int
                           ) -> dict[str, float]:
    """Throughput and p99 of requests that fail validation (422): the web stack alone."""
    latencies: list[float] = []
    left = iter(range(n))

    async def one_client() -> None:
        for _ in left:
            began = time.perf_counter()
            r = await client.post("/v1/recommend", json={"history": [], "k": 5})
            latencies.append(time.perf_counter() - began)
            assert r.status_code == 422, r.text

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    wall = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"rps": round(n / wall, 1), "p99_s": round(q[98], 4)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--no-llm", action="store_true")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--queue-depth", type=int, default=0,
                        help="at least --clients (so that no request is refused)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1, help="recagent serve --workers")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="show the service's log")
    args = parser.parse_args()
    if not 1 <= args.clients <= 1000 or not 1 <= args.requests <= 10000:
        parser.error("--clients must be 1-1000 and --requests 1-10000 (a bounded load)")

    work = histories(args.data / "u.data", args.requests, args.seed)
    known = catalog_ids(args.data / "u.item")
    port = free_port()
    proc = start(args, port)
    try:
        out = asyncio.run(load(args, f"http://127.0.0.1:{port}", proc, work, known))
    except BaseException:
        proc.kill()
        raise
    stopping = time.perf_counter()
    proc.terminate()  # SIGTERM: the embedded model first finishes what it was still given
    try:
        out["exit_code"] = proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        out["exit_code"] = "killed after 900 s"
    out["stop_s"] = round(time.perf_counter() - stopping, 1)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['llm']}: {out['requests']} requests from {out['clients']} concurrent clients "
          f"in {out['wall_s']} s ({out['throughput_rps']} req/s; service ready in "
          f"{out['startup_s']} s)")
    print(f"latency p50 {out['p50_s']} s, p95 {out['p95_s']} s, p99 {out['p99_s']} s, max "
          f"{out['max_s']} s; {out['over_deadline']} over the {out['deadline_s']:g} s deadline")
    print(f"validation-only floor (422) in the same run: {out['floor_rps']} req/s, p99 "
          f"{out['floor_p99_s']} s; recommendations at {out['share_of_floor']} of it")
    print(f"degraded {out['degraded_share'] or 0:.0%} {out['degraded_reasons']}; errors "
          f"{out['errors']} {out['statuses']}; invalid items {out['invalid_items']}")
    print(f"stopped by SIGTERM in {out['stop_s']} s, exit code {out['exit_code']}")


if __name__ == "__main__":
    main()
