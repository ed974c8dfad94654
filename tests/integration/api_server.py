"""A real ``airflow api-server`` for a test, and the one HTTP helper the tests call it with."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def http(url: str, *, data: dict | None = None, token: str | None = None,
         cookie: str | None = None) -> tuple[int, str]:
    """(status, body) of a GET, or of a JSON POST when ``data`` is given; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                 headers={"content-type": "application/json"} if data is not None else {})
    if token:
        req.add_header("authorization", f"Bearer {token}")
    if cookie:
        req.add_header("cookie", f"_token={cookie}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """Terminate ``proc``, and kill it if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def api_server(airflow: Path, env: dict[str, str], home: Path) -> Iterator[str]:
    """Start ``airflow api-server`` on a free local port with ``env``, wait until it answers, yield its base URL;
    stop it afterwards. Its output goes to ``home/api-server.log`` (shown when it does not come up)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (home / "api-server.log").open("w")
    server = subprocess.Popen([str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if server.poll() is not None:
                break
            try:
                if http(f"{base}/api/v2/version")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
        yield base
    finally:
        stop(server, 30)
        log.close()
