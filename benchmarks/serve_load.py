"""Bounded load test of the served predictor on 127.0.0.1: one-formula latency (median, p99) and a 10,000-formula batch.

Usage: python benchmarks/serve_load.py [--model-uri models:/xtalml-predictor@champion] [--requests 300] [--batch 10000]
Starts `mlflow models serve` of the registered predictor on a free local port (MLFLOW_TRACKING_URI, default
sqlite:///mlflow.db; run `dvc repro` first), waits for /ping, sends --requests one-formula requests one after another
(test-split formulas, each at most once), then one request with --batch formulas, prints the figures and stops the
server. Every request has a 60 s timeout and the whole run a deadline, so it always ends.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from xtalml.config import load_params
from xtalml.tasks import read_table, task_sources


def post(url: str, formulas: list[str]) -> tuple[float, list[dict]]:
    body = json.dumps({"dataframe_records": [{"formula": f} for f in formulas]}).encode()
    request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        rows = json.loads(answer.read())["predictions"]
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-uri", default="models:/xtalml-predictor@champion")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--deadline-s", type=float, default=600)
    args = parser.parse_args()

    table = read_table(task_sources(load_params()["tasks"]["sg_from_composition"]), ["id", "formula"])
    test = table.query("part == 'test'")["formula"].drop_duplicates().tolist()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", args.model_uri, "--env-manager",
                               "local", "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + args.deadline_s
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"mlflow models serve stopped: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the server did not answer /ping before the deadline")
                time.sleep(0.5)
        print(f"server up in {time.perf_counter() - started:.1f} s ({args.model_uri})")
        post(url, test[:1])  # the first request loads lazily-imported code; not counted
        latencies = []
        for formula in test[1:args.requests + 1]:
            if time.time() > deadline:
                break
            seconds, rows = post(url, [formula])
            latencies.append(seconds)
            assert len(rows) == 1 and not isinstance(rows[0].get("error"), str), rows
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        print(f"one formula per request, {len(latencies)} requests: median {1000 * statistics.median(latencies):.1f} ms, "
              f"p99 {1000 * p99:.1f} ms, max {1000 * latencies[-1]:.1f} ms")
        batch = (test * (args.batch // len(test) + 1))[:args.batch]
        seconds, rows = post(url, batch)
        errors = sum(1 for r in rows if isinstance(r.get("error"), str) and r["error"])  # no error: null or NaN
        print(f"{len(batch):,} formulas in one request: {seconds:.2f} s ({len(rows):,} rows, {errors} errors)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
