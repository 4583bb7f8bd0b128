"""The HTTP server under load: time to first audio byte, real-time factor, and a bounded load test.

    .venv/bin/python benchmarks/serve_bench.py --out runs/serve_bench              # ~6 min on 2 cores
    .venv/bin/python benchmarks/serve_bench.py --out runs/serve_bench --soak-minutes 10

Starts ``speechlm serve`` (a real uvicorn process, ``--workers 1 --queue 2 --threads 2``) on a free local port.

1. Latency: ``--n`` one-sentence requests one at a time (streamed ``pcm``): time to the first audio byte and to the
   last, and the real-time factor (request time over audio time).
2. Load: ``--clients`` x capacity concurrent clients (capacity = workers; 1x, 2x and 4x), each sending
   ``--per-client`` requests back to back; p50/p95 latency of the answered ones, throughput, the share answered
   429 (refused at once by the bounded queue), and the number of 5xx (must be 0). It stops by itself.
3. Soak (optional): requests at capacity for ``--soak-minutes``; the server's resident memory and open file
   descriptors (from /proc) at the start and the end.

Writes OUT/results.json and prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SENTENCES = ["Please hold while we connect your call.", "The meeting has been moved to Thursday afternoon.",
             "Your order will arrive within three business days.", "Thank you for calling, have a nice day.",
             "The next train to the city leaves in ten minutes."]


def request(port: int, text: str, timeout: float = 120.0) -> dict:
    """One streamed speech request -> status, seconds to the first byte and to the last, audio seconds."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", "/v1/audio/speech", body=json.dumps({"input": text, "response_format": "pcm"}),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    first, n = None, 0
    while chunk := r.read1(65536):
        if first is None:
            first = time.perf_counter() - t0
        n += len(chunk)
    conn.close()
    return {"status": r.status, "first": first, "total": time.perf_counter() - t0,
            "audio_s": n / 2 / 24000 if r.status == 200 else 0.0}


def proc_stats(pid: int) -> dict:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return {"rss_mb": round(rss, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def load(port: int, clients: int, per_client: int) -> dict:
    results: list[dict] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for j in range(per_client):
            res = request(port, SENTENCES[(i + j) % len(SENTENCES)])
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["status"] == 200]
    lat = np.array([r["total"] for r in ok]) if ok else np.array([np.nan])
    return {"clients": clients, "requests": len(results), "ok": len(ok),
            "share_429": sum(r["status"] == 429 for r in results) / len(results),
            "n_5xx": sum(r["status"] >= 500 for r in results), "p50_s": float(np.percentile(lat, 50)),
            "p95_s": float(np.percentile(lat, 95)), "throughput_rps": len(ok) / wall,
            "audio_s_per_s": sum(r["audio_s"] for r in ok) / wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--per-client", type=int, default=4)
    p.add_argument("--soak-minutes", type=float, default=0.0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers = 1
    srv = subprocess.Popen([sys.executable, "-m", "speechlm.cli", "serve", "--port", str(port), "--workers",
                            str(workers), "--queue", "2", "--threads", "2",
                            "--voices-dir", str(out / "voices")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health")
                break
            except OSError:
                time.sleep(0.1)
        request(port, "Warm up.")
        lat = [request(port, SENTENCES[i % len(SENTENCES)]) for i in range(args.n)]
        first = np.array([r["first"] for r in lat])
        rtf = np.array([r["total"] / r["audio_s"] for r in lat])
        cmd = "benchmarks/serve_bench.py --out runs/serve_bench" + (
            f" --soak-minutes {args.soak_minutes:g}" if args.soak_minutes > 0 else "")
        res = {"kind": "serve_bench", "command": cmd,
               "workers": workers, "queue": 2, "threads": 2, "n": args.n,
               "first_byte_ms": {"p50": float(np.median(first) * 1000), "p95": float(np.percentile(first, 95) * 1000)},
               "rtf_median": float(np.median(rtf)), "load": []}
        for mult in (1, 2, 4):
            res["load"].append({"x_capacity": mult, **load(port, mult * workers, args.per_client)})
        if args.soak_minutes > 0:
            before = proc_stats(srv.pid)
            end = time.time() + 60 * args.soak_minutes
            n = 0
            while time.time() < end:
                request(port, SENTENCES[n % len(SENTENCES)])
                n += 1
            res["soak"] = {"minutes": args.soak_minutes, "requests": n, "before": before, "after": proc_stats(srv.pid)}
    finally:
        srv.terminate()
        srv.wait(10)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"first audio byte p50 {res['first_byte_ms']['p50']:.0f} ms, p95 {res['first_byte_ms']['p95']:.0f} ms; "
          f"RTF {res['rtf_median']:.3f}")
    print("| load | requests | answered | 429 share | 5xx | p50 s | p95 s | req/s | audio s/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in res["load"]:
        print(f"| {r['x_capacity']}x | {r['requests']} | {r['ok']} | {r['share_429']:.2f} | {r['n_5xx']} | "
              f"{r['p50_s']:.2f} | {r['p95_s']:.2f} | {r['throughput_rps']:.2f} | {r['audio_s_per_s']:.1f} |")
    if "soak" in res:
        print(f"soak: {res['soak']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
