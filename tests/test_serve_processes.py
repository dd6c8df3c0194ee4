"""`gaas serve --workers N`: several API processes behind one socket, sharing the work and
reporting their metrics together (real processes, real HTTP)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_several_api_processes_serve_and_report_together(database, tmp_path):
    port = free_port()
    env = {**os.environ, "GAAS_DATA_DIR": str(tmp_path), "GAAS_LOG_FORMAT": "json"}
    server = subprocess.Popen([sys.executable, "-m", "gaas.cli", "serve", "--workers", "2", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            server.kill()
            raise AssertionError(f"the server did not become ready: {server.communicate()[1].decode()[-3000:]}")
        for _ in range(40):  # a new connection each time: the kernel spreads them over the processes
            assert httpx.get(f"{base}/api/health", timeout=5).json()["status"] == "ok"
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=5).text)}
        served = sum(s.value for s in families["gaas_http_request_duration_seconds"].samples
                     if s.name.endswith("_count") and s.labels["route"] == "/api/health")
        assert served == 40  # every process's requests, counted once
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, errors = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0, errors.decode()[-2000:]
    assert b"Traceback" not in errors
    assert sum(1 for line in errors.decode().splitlines() if '"Started server process' in line) == 2
