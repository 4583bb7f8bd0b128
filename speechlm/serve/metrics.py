"""Counters, gauges and latency histograms in the Prometheus text format (``GET /metrics``)."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.rejected: dict[str, int] = defaultdict(int)
        self.latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.first_audio: list[int] = [0] * (len(BUCKETS) + 1)
        self.first_audio_sum = 0.0
        self.in_flight = 0
        self.waiting = 0

    def observe(self, path: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(path, status)] += 1
            self.latency_sum[path] += seconds
            self.latency[path][_bucket(seconds)] += 1

    def observe_first_audio(self, seconds: float) -> None:
        with self.lock:
            self.first_audio_sum += seconds
            self.first_audio[_bucket(seconds)] += 1

    def reject(self, reason: str) -> None:
        with self.lock:
            self.rejected[reason] += 1

    def render(self) -> str:
        with self.lock:
            out = ["# HELP speechlm_requests_total Requests answered, by path and status.",
                   "# TYPE speechlm_requests_total counter"]
            out += [f'speechlm_requests_total{{path="{p}",status="{s}"}} {n}'
                    for (p, s), n in sorted(self.requests.items())]
            out += ["# HELP speechlm_rejections_total Requests refused before any work, by reason.",
                    "# TYPE speechlm_rejections_total counter"]
            out += [f'speechlm_rejections_total{{reason="{r}"}} {n}' for r, n in sorted(self.rejected.items())]
            out += ["# HELP speechlm_request_seconds Request latency (streams: until the last byte).",
                    "# TYPE speechlm_request_seconds histogram"]
            for p, counts in sorted(self.latency.items()):
                out += _hist("speechlm_request_seconds", f'path="{p}"', counts, self.latency_sum[p])
            out += ["# HELP speechlm_first_audio_seconds Time to the first audio byte of speech requests.",
                    "# TYPE speechlm_first_audio_seconds histogram"]
            out += _hist("speechlm_first_audio_seconds", "", self.first_audio, self.first_audio_sum)
            out += ["# HELP speechlm_in_flight Syntheses running.", "# TYPE speechlm_in_flight gauge",
                    f"speechlm_in_flight {self.in_flight}",
                    "# HELP speechlm_queue_depth Requests waiting for a worker.", "# TYPE speechlm_queue_depth gauge",
                    f"speechlm_queue_depth {self.waiting}"]
        return "\n".join(out) + "\n"


def _bucket(seconds: float) -> int:
    return next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))


def _hist(name: str, labels: str, counts: list[int], total: float) -> list[str]:
    sep = "," if labels else ""
    out, cum = [], 0
    for b, n in zip([*BUCKETS, float("inf")], counts):
        cum += n
        le = "+Inf" if b == float("inf") else f"{b:g}"
        out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {cum}')
    lab = f"{{{labels}}}" if labels else ""
    out += [f"{name}_sum{lab} {total:.6f}", f"{name}_count{lab} {cum}"]
    return out
