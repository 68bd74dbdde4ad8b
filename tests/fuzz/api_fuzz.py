"""Fuzz the running service from its own OpenAPI document with schemathesis.

Starts ``creditledger serve`` on a fresh database and a free port, makes a team admin,
an operator and a service token, and runs ``st run`` with every check once per token.
Exits non-zero when schemathesis finds anything. ``make fuzz-api`` runs it with a
bounded budget (CI); ``--max-examples`` raises it for a long run.

    python -m tests.fuzz.api_fuzz [--max-examples N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "creditledger"), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def _token_from(output: str) -> str:
    """``tokens create`` prints only the token."""
    return output.rsplit(maxsplit=1)[-1]


def _post(base: str, path: str, body: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def _wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(150):
        if server.poll() is not None:
            raise SystemExit("the server exited before it answered")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def _fuzz_while_serving(
    env: dict[str, str],
    base: str,
    port: int,
    log: IO[bytes],
    platform_tokens: tuple[str, str],
    args: argparse.Namespace,
) -> list[str]:
    """Serve, run schemathesis once per kind of caller; the callers it found problems for."""
    operator, service = platform_tokens
    server = subprocess.Popen(
        [str(BIN / "creditledger"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    failed = []
    try:
        _wait_until_up(base, server)
        signup = _post(
            base,
            "/v1/signup",
            {"email": "fuzz@example.com", "password": "fuzz-password-1", "team_name": "F"},
        )
        admin = str(signup["token"])
        for name, token in (("admin", admin), ("operator", operator), ("service", service)):
            print(f"== schemathesis as {name}", flush=True)
            run = subprocess.run(
                [
                    str(BIN / "st"),
                    "run",
                    f"{base}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {token}",
                    "--max-examples",
                    str(args.max_examples),
                    "--seed",
                    str(args.seed),
                    # One worker: with two threads, Hypothesis's descriptions of
                    # strategies parse source with ``ast`` in both at once, and Python
                    # 3.11's ``ast`` then now and then fails ("AST constructor recursion
                    # depth mismatch", CPython gh-106905) inside the fuzzer, before any
                    # request is sent. One worker takes 25 s for the three callers.
                    "--workers",
                    "1",
                    "--no-color",
                    "--generation-database",
                    "none",
                ],
                env=env,
                check=False,
            )
            if run.returncode != 0:
                failed.append(name)
    finally:
        server.terminate()
        server.wait(timeout=20)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cl-fuzz-") as tmp:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "CREDITLEDGER_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/fuzz.db",
            "CREDITLEDGER_PUBLIC_URL": base,
        }
        _cli(env, "migrate")
        operator = _token_from(_cli(env, "tokens", "create", "--kind", "operator", "--name", "fz"))
        service = _token_from(_cli(env, "tokens", "create", "--kind", "service", "--name", "fz"))
        server_log_path = Path(tmp, "server.log")
        with server_log_path.open("wb") as log:
            failed = _fuzz_while_serving(env, base, port, log, (operator, service), args)
        server_log = server_log_path.read_text(errors="replace")
        if "Traceback" in server_log:
            print(server_log[-20000:])
            failed.append("server tracebacks")
        if failed:
            print(f"schemathesis found problems: {', '.join(failed)}")
            return 1
        print("schemathesis: no failures")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
