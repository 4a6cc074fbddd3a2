"""Synthetic neutral issues for the example file and the benchmarks.

Deterministic for a given seed.  The issues look like a support desk's: priorities
and types of Redmine's defaults, replies by agents and customers, waiting for the
customer (Feedback), resolutions and the odd reopen, spread over weeks of office
hours.  ``python bench/synthetic.py N [--seed S] [--start ISO]`` writes N lines.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

TITLES = (
    "Checkout page returns 502 for all customers",
    "Cannot log in with SSO since this morning",
    "Invoice PDF shows the wrong VAT rate",
    "Export to CSV times out for large accounts",
    "Password reset e-mail never arrives",
    "Dashboard loads slowly after the upgrade",
    "API returns 500 on /orders with a date filter",
    "Mobile app crashes when opening notifications",
    "Add a field for the purchase order number",
    "Wrong timezone in the weekly report",
    "User cannot upload attachments over 5 MB",
    "Duplicate charges on recurring payments",
    "Search ignores accents in customer names",
    "Request: bulk-assign tickets to a team",
    "Webhook deliveries delayed by several hours",
    "Question about the data retention policy",
)
AGENTS = ("alice", "bob", "carol")
CUSTOMERS = ("dave", "erin", "frank", "grace")
PRIORITIES = (("Immediate", 1), ("Urgent", 3), ("High", 10), ("Normal", 30), ("Low", 8))
TYPES = (("Bug", 5), ("Support", 4), ("Feature", 1))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([n for n, _ in table], weights=[w for _, w in table])[0]


def _office_instant(rng: random.Random, day: datetime) -> datetime:
    """An instant on a weekday, mostly in office hours (Madrid time ~ UTC+1)."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=rng.choice((7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 19)), minute=rng.randrange(60), second=0)


def issue(rng: random.Random, number: int, created: datetime, now: datetime) -> dict[str, Any]:
    """One issue whose history ends before ``now``."""
    author = rng.choice(CUSTOMERS)
    status = "New"
    events: list[dict[str, Any]] = []
    t = created
    steps = rng.randint(0, 7)
    for _ in range(steps):
        t += timedelta(minutes=rng.choice((10, 25, 45, 90, 180, 600, 1500, 2900)))
        if t >= now:
            break
        move = rng.random()
        if move < 0.35:
            events.append({"at": _iso(t), "kind": "comment", "public": rng.random() < 0.85,
                           "by_agent": True, "by": rng.choice(AGENTS)})
            if status == "New":
                events.append({"at": _iso(t), "kind": "status", "from": status, "to": "In Progress"})
                status = "In Progress"
        elif move < 0.5:
            events.append({"at": _iso(t), "kind": "comment", "public": True, "by_agent": False, "by": author})
        elif move < 0.65 and status not in ("Feedback", "Resolved", "Closed"):
            events.append({"at": _iso(t), "kind": "status", "from": status, "to": "Feedback"})
            status = "Feedback"
        elif move < 0.75 and status == "Feedback":
            events.append({"at": _iso(t), "kind": "status", "from": status, "to": "In Progress"})
            status = "In Progress"
        elif move < 0.92 and status not in ("Resolved", "Closed"):
            events.append({"at": _iso(t), "kind": "status", "from": status, "to": "Resolved"})
            status = "Resolved"
        elif status == "Resolved":
            to = "Closed" if rng.random() < 0.7 else "In Progress"  # closed, or reopened
            events.append({"at": _iso(t), "kind": "status", "from": status, "to": to})
            status = to
    solved = status in ("Resolved", "Closed")
    return {
        "key": f"SUP-{number}",
        "title": rng.choice(TITLES),
        "created_at": _iso(created),
        "status": status,
        "priority": _pick(rng, PRIORITIES),
        "type": _pick(rng, TYPES),
        "project": "support",
        "labels": [],
        "assignee": rng.choice(AGENTS) if status != "New" else None,
        "milestone": None,
        "fields": {"CSAT": rng.choice((3, 4, 4, 5, 5, 2))} if solved and rng.random() < 0.6 else {},
        "events": events,
        "author": author,
    }


def generate(n: int, seed: int = 7, start: datetime | None = None, span_days: int = 28) -> Iterator[dict[str, Any]]:
    """``n`` issues created over ``span_days`` days from ``start``."""
    rng = random.Random(seed)
    start = start or datetime(2026, 10, 26, tzinfo=UTC)
    now = start + timedelta(days=span_days + 5)
    for i in range(n):
        day = start + timedelta(days=span_days * i / max(n, 1))
        yield issue(rng, 1000 + i, _office_instant(rng, day), now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2026-10-26T00:00:00+00:00")
    parser.add_argument("--span-days", type=int, default=28)
    args = parser.parse_args()
    out = sys.stdout.buffer
    for obj in generate(args.n, args.seed, datetime.fromisoformat(args.start), args.span_days):
        out.write(orjson.dumps(obj) + b"\n")


if __name__ == "__main__":
    main()
