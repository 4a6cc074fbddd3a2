"""Random faults on a share of requests, for the fault-injection suite.

A ``Chaos`` is handed to a fake (or to the proxy in front of the real Redmine):
for each request it decides, from its own seeded random generator, whether the
request gets a fault and which one: a 5xx, a 429 with ``Retry-After``, a
connection reset, a malformed body, a delay past the client's timeout, or an answer
lost after the request was carried out.  It also counts what it injected, so the
suite can report how many faults each run survived.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = ("500", "502", "503", "429", "reset", "malformed", "delay", "lost")


@dataclass
class Chaos:
    """Faults on ``share`` of the requests (0 to 1), drawn from ``kinds``."""

    share: float
    seed: int
    kinds: tuple[str, ...] = KINDS
    delay: float = 2.5  # past the 2 s timeout the test policies set
    injected: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> dict[str, Any] | None:
        """The fault for the next request, as keyword arguments of a ``Fault``, or ``None``."""
        with self._lock:
            if self._rng.random() >= self.share:
                return None
            kind = self._rng.choice(self.kinds)
            # a delay costs real seconds: keep it rare
            if kind == "delay" and self._rng.random() < 0.8:
                kind = "503"
            self.injected[kind] += 1
        if kind == "429":
            return {"status": 429, "retry_after": 0}
        if kind in ("reset", "malformed"):
            return {"kind": kind}
        if kind == "delay":
            return {"kind": "delay", "seconds": self.delay}
        if kind == "lost":
            return {"status": 502, "after": True}
        return {"status": int(kind)}

    @property
    def total(self) -> int:
        return sum(self.injected.values())
