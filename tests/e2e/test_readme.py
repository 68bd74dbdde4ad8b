"""The README, tried as a new user would: `make run` as the quick start says, then every
marked shell block pasted into one shell, in order, after the `export` line the demo printed.

A block is run when the line before its fence is ``<!-- readme-test: NAME -->``; ``CHECKS``
holds what each one must answer (its JSON and the statuses in the server's access log).
Blocks run exactly as written, but for the port (the server gets a free one), with a PATH
that holds only the tools a fresh machine has (``FRESH_MACHINE_TOOLS``), in a directory of
their own. SQLite only: the quick start's embedded database, in a temporary file.

The links of the README, ``docs/`` and ``bench/README.md`` must name files of this
repository (and headings that exist), never a path outside it; ``docs/api.md`` must list
every endpoint the app serves and every error code of the domain.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from creditledger.bootstrap import build_context
from creditledger.domain import errors
from creditledger.entrypoints.api.app import create_app
from creditledger.entrypoints.api.errors import status_of
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, ROOT / "bench" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DEFAULT_ADDRESS = "127.0.0.1:8000"
FRESH_MACHINE_TOOLS = ("curl", "date", "python3")
"""What the README's blocks may call besides `.venv/bin/creditledger` (no uuidgen, no jq)."""
BASH = shutil.which("bash") or "/bin/bash"
START_TIMEOUT = 60.0
BLOCK_TIMEOUT = 30.0

_MARKER = re.compile(r"<!-- readme-test: ([a-z0-9-]+) -->\n```sh\n(.*?)\n```", re.S)
_ACCESS_LOG = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1" (\d{3})')
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


# --- what each marked block must answer --------------------------------------------------


@dataclass
class Run:
    """One block's run: what it printed, the JSON objects in that, and the requests the
    server logged meanwhile as (method, path, status)."""

    output: str
    answers: list[dict[str, Any]]
    requests: list[tuple[str, str, int]]


def statuses(run: Run, method: str, path: str) -> list[int]:
    pattern = re.compile(path)
    return [s for m, p, s in run.requests if m == method and pattern.fullmatch(p)]


TEAM_PATH = r"/v1/teams/team_[0-9a-f]+"


def check_balance(run: Run) -> None:
    assert statuses(run, "GET", TEAM_PATH + "/balance") == [200]
    (balance,) = run.answers
    assert balance["available"]["prepaid"] == "20.00"
    assert balance["available"]["total"].startswith("52.70")
    assert balance["unpaid_balance"] == "5.52435"  # the demo's weeks before its credit
    assert balance["billing_mode"] == "pay_as_you_go"
    assert (balance["tier"]["level"], balance["tier"]["requests_per_minute"]) == (1, 100)
    assert balance["lifetime_paid"] == "20.00"


def check_purchase(run: Run) -> None:
    assert statuses(run, "POST", TEAM_PATH + "/purchases") == [201]
    (purchase,) = run.answers
    assert purchase["id"].startswith("pur_")
    assert (purchase["amount"], purchase["status"]) == ("10.00", "pending")
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/sandbox/checkout/cs_sb_\w+", purchase["checkout_url"]
    )


def check_pay(run: Run) -> None:
    assert run.output.split() == ["200"]
    assert statuses(run, "POST", r"/sandbox/checkout/cs_sb_\w+") == [200]


def check_purchase_succeeded(run: Run) -> None:
    assert statuses(run, "GET", TEAM_PATH + r"/purchases/pur_\w+") == [200]
    purchase, balance = run.answers
    assert (purchase["amount"], purchase["status"]) == ("10.00", "succeeded")
    assert balance["available"]["prepaid"] == "30.00"
    assert balance["lifetime_paid"] == "30.00"


def check_auto_recharge(run: Run) -> None:
    assert statuses(run, "PUT", TEAM_PATH + "/auto-recharge") == [200]
    assert run.answers == [
        {
            "enabled": True,
            "threshold": "5.00",
            "restore_to": "20.00",
            "disabled_reason": None,
            "payment_method_saved": True,
        }
    ]


def check_redeem(run: Run) -> None:
    assert statuses(run, "POST", TEAM_PATH + "/promo-codes/redeem") == [201]
    (grant,) = run.answers
    assert grant["id"].startswith("grant_")
    assert (grant["kind"], grant["source"], grant["amount"]) == (
        "promotional",
        "promo_code",
        "5.00",
    )


def check_promo_create(run: Run) -> None:
    assert run.output.splitlines() == ["SPRING-2027"]


def check_usage(run: Run) -> None:
    assert statuses(run, "POST", "/v1/usage-events") == [200]
    assert run.answers == [{"accepted": 1, "duplicates": 0, "rejected": []}]


def check_history(run: Run) -> None:
    assert statuses(run, "GET", TEAM_PATH + r"/credit-history\?type=usage&limit=1") == [200]
    (page,) = run.answers
    (entry,) = page["data"]
    assert (entry["type"], entry["amount"], entry["kind"]) == ("usage", "-0.00042", "promotional")
    assert entry["description"] == "Usage serverless llama-3.1-70b"
    assert page["next_cursor"]


def check_authorize(run: Run) -> None:
    assert statuses(run, "POST", "/v1/authorize") == [200]
    (decision,) = run.answers
    assert (decision["allowed"], decision["reason"]) == (True, "ok")
    assert decision["tier"] == {"level": 1, "requests_per_minute": 100, "max_output_tokens": 16384}


def check_operator(run: Run) -> None:
    assert statuses(run, "GET", "/v1/prices") == [200]
    assert statuses(run, "POST", TEAM_PATH + "/grants") == [201]
    prices, grant = run.answers
    assert {
        "product": "serverless",
        "model": "llama-3.1-8b",
        "gpu": None,
        "meter": "input_tokens",
        "unit_price": "0.05",
        "per_units": 1000000,
    } in prices["data"]
    assert (grant["kind"], grant["source"], grant["amount"]) == ("promotional", "manual", "2.50")


def check_cli(run: Run) -> None:
    assert run.output.startswith("ledger ok: ")


CHECKS: dict[str, Callable[[Run], None]] = {
    "balance": check_balance,
    "purchase": check_purchase,
    "pay": check_pay,
    "purchase-succeeded": check_purchase_succeeded,
    "auto-recharge": check_auto_recharge,
    "redeem": check_redeem,
    "promo-create": check_promo_create,
    "usage": check_usage,
    "history": check_history,
    "authorize": check_authorize,
    "operator": check_operator,
    "cli": check_cli,
}


# --- the server, as the quick start starts it, and a shell -------------------------------


class Lines:
    """The lines a process writes, gathered by a thread so that reading never blocks."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.fresh: queue.Queue[str | None] = queue.Queue()
        self.stream = stream
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def close(self) -> None:
        """After the process ended: the last lines read, then the pipe closed."""
        self.reader.join(timeout=10)
        self.stream.close()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            self.fresh.put(line.rstrip("\n"))
        self.fresh.put(None)

    def until(self, done: Callable[[str], bool], timeout: float) -> list[str]:
        """The lines up to the first one ``done`` accepts (fails on timeout or EOF)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.fresh.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("timed out after:\n" + "\n".join(self.lines)) from None
            assert line is not None, "the process ended:\n" + "\n".join(self.lines)
            seen.append(line)
            if done(line):
                return seen


@dataclass
class QuickStart:
    port: int
    output: Lines
    cwd: Path
    env: dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers_http(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop(process: subprocess.Popen[str], sig: int) -> None:
    """Send ``sig`` to the process group (Ctrl-C in a terminal reaches every process of
    it): make and the server it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def base_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without this service's settings or an outer make's flags."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CREDITLEDGER_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    env["CREDITLEDGER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'creditledger.db'}"
    # Cheap password hashing, as in every test: the demo's login is not what is tried here.
    env["CREDITLEDGER_PASSWORD_TIME_COST"] = "1"
    env["CREDITLEDGER_PASSWORD_MEMORY_KIB"] = "8"
    return env


@pytest.fixture
def quick_start(tmp_path: Path) -> Iterator[QuickStart]:
    """`make run` on a free port and a fresh SQLite file; stopped with Ctrl-C after."""
    missing = [tool for tool in ("make", "bash", *FRESH_MACHINE_TOOLS) if not shutil.which(tool)]
    if missing:
        pytest.skip(f"not installed here: {', '.join(missing)}")
    port = free_port()
    env = base_env(tmp_path)
    # `-o` keeps make from reinstalling the existing virtualenv should pyproject.toml be
    # newer; everything else is the quick start's own `make run`.
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/bin/creditledger", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    output = Lines(process.stdout)
    try:
        output.until(lambda line: "Uvicorn running on" in line, START_TIMEOUT)
        cwd = tmp_path / "clone"
        cwd.mkdir()
        (cwd / ".venv").symlink_to(ROOT / ".venv")
        yield QuickStart(port, output, cwd, env)
        stop(process, signal.SIGINT)
        process.wait(timeout=15)
        assert not answers_http(port), "Ctrl-C did not stop the server"
    finally:
        stop(process, signal.SIGKILL)
        process.wait(timeout=15)
        output.close()


class Shell:
    """One bash fed block after block on its stdin, as a user pastes into a terminal."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [BASH, "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.output = Lines(self.process.stdout)

    def run(self, commands: str) -> tuple[str, int]:
        """What ``commands`` printed, and the exit status of the last one."""
        assert self.process.stdin is not None
        end = "@@readme-test-done@@"
        self.process.stdin.write(f"{commands}\nprintf '\\n{end} %d\\n' $?\n")
        self.process.stdin.flush()
        lines = self.output.until(lambda line: line.startswith(end), BLOCK_TIMEOUT)
        return "\n".join(lines[:-1]).strip(), int(lines[-1].split()[-1])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # bash exits at the end of its input
        try:
            self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
            self.output.close()


def fresh_machine_path(directory: Path) -> str:
    """A PATH of only ``FRESH_MACHINE_TOOLS`` (python3 is this interpreter's own)."""
    directory.mkdir()
    for tool in FRESH_MACHINE_TOOLS:
        found = sys.executable if tool == "python3" else shutil.which(tool)
        assert found is not None, f"{tool} is not installed here"
        (directory / tool).symlink_to(Path(found).resolve())
    return str(directory)


def json_objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found, at = [], text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        found.append(value)
        at = text.find("{", end)
    return found


def marked_blocks(text: str) -> list[tuple[str, str]]:
    return _MARKER.findall(text)


def requests_since(log: Lines, start: int) -> list[tuple[str, str, int]]:
    found = (_ACCESS_LOG.search(line) for line in log.lines[start:])
    return [(m.group(1), m.group(2), int(m.group(3))) for m in found if m]


def test_every_marked_block_has_a_check_and_every_check_a_block() -> None:
    names = [name for name, _ in marked_blocks(README.read_text())]
    assert len(names) == len(set(names)), "two blocks share a name"
    assert names == list(CHECKS)


@pytest.mark.slow
def test_the_readme_commands_answer_as_the_readme_says(
    quick_start: QuickStart, tmp_path: Path
) -> None:
    started = "\n".join(quick_start.output.lines)
    assert "log in:  email demo@creditledger.local  password demo-password-123" in started
    assert "promo:   WELCOME-DEMO" in started
    export = next(line for line in quick_start.output.lines if line.startswith("export TOKEN="))
    env = {
        "PATH": fresh_machine_path(tmp_path / "bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "CREDITLEDGER_DATABASE_URL": quick_start.env["CREDITLEDGER_DATABASE_URL"],
    }
    shell = Shell(quick_start.cwd, env)
    try:
        _, status = shell.run(export)  # pasted as printed
        assert status == 0
        for name, block in marked_blocks(README.read_text()):
            commands = block.replace(DEFAULT_ADDRESS, f"127.0.0.1:{quick_start.port}")
            logged = len(quick_start.output.lines)
            output, status = shell.run(commands)
            assert status == 0, f"block {name!r} failed:\n{output}"
            time.sleep(0.1)  # the access log line of the last request may trail its answer
            run = Run(output, json_objects(output), requests_since(quick_start.output, logged))
            try:
                CHECKS[name](run)
            except AssertionError as exc:
                raise AssertionError(f"block {name!r} answered:\n{output}\n{run.requests}") from exc
    finally:
        shell.close()
    webhooks = requests_since(quick_start.output, 0)
    assert ("POST", "/v1/webhooks/sandbox", 200) in webhooks  # the sandbox's delivery


# --- links and the API reference ----------------------------------------------------------


def heading_anchors(path: Path) -> set[str]:
    """The anchors a Markdown renderer gives the headings of ``path``."""
    anchors = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_links_name_files_of_this_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "../shared" not in text
    assert "/work/" not in text
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.is_relative_to(ROOT), f"{target} points outside the repository"
        assert resolved.exists(), f"{target} does not exist"
        if anchor:
            assert anchor in heading_anchors(resolved), f"{target}: no such heading"


def test_the_api_reference_lists_every_endpoint_the_app_serves(tmp_path: Path) -> None:
    ctx = build_context(make_settings(f"sqlite:///{tmp_path / 'openapi.db'}"))
    try:
        paths = create_app(ctx).openapi()["paths"]
    finally:
        ctx.uow.dispose()
    reference = (ROOT / "docs" / "api.md").read_text()
    served = [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]
    served += ["GET /sandbox/checkout/{session_id}", "POST /sandbox/checkout/{session_id}"]
    # Written `METHOD /path`, closed by the backtick or by its query string.
    missing = [e for e in served if not re.search(re.escape(f"`{e}") + r"[`?]", reference)]
    assert missing == []


def _error_classes(cls: type[errors.CreditLedgerError]) -> Iterator[type[errors.CreditLedgerError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _error_classes(sub)


def test_the_api_reference_lists_every_error_code_with_its_status() -> None:
    reference = (ROOT / "docs" / "api.md").read_text()
    listed = {
        code: int(status)
        for code, status in re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", reference, re.M)
    }
    # The base classes' codes are never sent as such; per-event codes have their own table.
    abstract = {"error", "conflict", "promo_code_refused"}
    answered = {
        cls.code: status_of(cls.__new__(cls))
        for cls in _error_classes(errors.CreditLedgerError)
        if cls.code not in abstract and not issubclass(cls, errors.EventError)
    }
    assert {code: listed.get(code) for code in answered} == answered


_REJECTING_CALL = re.compile(r"\b(?:EventError|UnknownPrice|ChargeTooLarge|Rejection)\(")
_CODE_LITERAL = re.compile(r'"([a-z]+(?:_[a-z]+)+)"')


def test_the_api_reference_lists_every_usage_rejection_code() -> None:
    """The codes the source passes when it refuses one event (read from the source, since
    they are values, not classes), against the reference's table of them."""
    reference = (ROOT / "docs" / "api.md").read_text()
    table = reference.split("### Usage rejection codes", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    used = set()
    for source in (ROOT / "src" / "creditledger").rglob("*.py"):
        text = source.read_text()
        for call in _REJECTING_CALL.finditer(text):
            code = _CODE_LITERAL.search(text, call.end(), call.end() + 120)
            if code is not None:  # the first snake_case literal of the call is its code
                used.add(code.group(1))
    assert "unknown_model" in used  # the scan finds what it looks for
    assert used - listed == set()


def test_code_cites_only_documents_of_this_repository() -> None:
    """Docstrings and comments point at ``docs/`` and ``bench/``, never at a
    specification that does not ship with the code."""
    outside = re.compile(r"\b(SPEC|QUALITY|PERFORMANCE|ARCHITECTURE)\.md|SPEC §|\.\./shared")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("src", "tests", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line) and path != Path(__file__)
    ]
    assert offenders == []
