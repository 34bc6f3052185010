"""Shared pieces of the reliability checks: the real `stylecast` binary as a child process,
a raw HTTP/1.1 client (so malformed requests reach the server byte for byte), psql, and a
private Postgres cluster that a test may stop and start.

Standard library only (Python 3.11), so CI needs nothing beyond the Rust build, Postgres's
binaries and `psql`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_PG = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")


class CheckFailed(Exception):
    """A reliability property did not hold; the message says which and by how much."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def binary() -> Path:
    """STYLECAST_BIN, else the newest of the release and debug builds."""
    if os.environ.get("STYLECAST_BIN"):
        return Path(os.environ["STYLECAST_BIN"])
    built = [p for p in (ROOT / "target/release/stylecast", ROOT / "target/debug/stylecast") if p.exists()]
    if not built:
        raise CheckFailed("no stylecast binary: run `cargo build --bin stylecast` (or set STYLECAST_BIN)")
    return max(built, key=lambda p: p.stat().st_mtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_code(self) -> str | None:
        """The `code` of a JSON error body, or None when the body is not one."""
        value = self.json()
        if isinstance(value, dict) and isinstance(value.get("code"), str) and value["code"]:
            return value["code"]
        return None


class TransportError(Exception):
    """No HTTP response came back (refused, reset, timed out)."""


def raw_request(port: int, data: bytes, timeout: float = 60.0) -> Response:
    """Sends `data` as-is on a fresh connection and reads one response until the server
    closes. A server that answers early (413) and closes while we still send is fine."""
    started = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as err:
        raise TransportError(f"connect: {err}") from err
    with sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except socket.timeout as err:
            raise TransportError(f"no response within {timeout}s") from err
    raw = b"".join(chunks)
    if not raw:
        raise TransportError("connection closed without a response")
    return parse_response(raw, time.monotonic() - started)


def parse_response(raw: bytes, seconds: float) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise TransportError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Response(int(parts[1]), headers, body, seconds)


def dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def build_request(
    method: str,
    path: str,
    port: int,
    headers: dict[str, str | bytes] | None = None,
    body: bytes | None = None,
    content_length: bool = True,
) -> bytes:
    # Non-ASCII and spaces percent-encoded, as any client sends them; the rest goes as given.
    target = "".join(c if 33 <= ord(c) < 127 else urllib.parse.quote(c) for c in path)
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), f"Host: 127.0.0.1:{port}".encode()]
    for name, value in (headers or {}).items():
        value = value if isinstance(value, bytes) else value.encode("utf-8")
        lines.append(name.encode("latin-1") + b": " + value)
    lines.append(b"Connection: close")
    if body is not None and content_length:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str | bytes] | None = None,
    body: bytes | None = None,
    timeout: float = 60.0,
) -> Response:
    return raw_request(port, build_request(method, path, port, headers, body), timeout)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def multipart(fields: list[tuple[str, bytes, str | None]], boundary: str | None = None) -> tuple[str, bytes]:
    """(content type, body) of multipart/form-data; a part with a filename is a file."""
    boundary = boundary or f"b{uuid.uuid4().hex}"
    out = bytearray()
    for name, value, filename in fields:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"Content-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


# ---------------------------------------------------------------- Postgres


def psql(url: str, sql: str, timeout: float = 300) -> str:
    """Runs SQL through psql (unaligned, tuples only) and returns its output."""
    done = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url],
        input=sql,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise CheckFailed(f"psql failed: {done.stderr.strip()}")
    return done.stdout


def create_database(prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    psql(f"{SHARED_PG}/postgres", f'CREATE DATABASE "{name}";')
    return name, f"{SHARED_PG}/{name}"


def drop_database(name: str, url_of_server: str = SHARED_PG) -> None:
    psql(f"{url_of_server}/postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')


class PrivatePostgres:
    """A throwaway cluster (initdb in a temp dir, its own port) that a test may stop and
    start without touching the shared server other tests use."""

    def __init__(self, password: str | None = None):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise CheckFailed("no Postgres server binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="stylecast-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.password = password
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses root: run the cluster as the postgres system user.
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        args = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--no-sync"]
        if password:
            pwfile = self.dir / "pw"
            pwfile.write_text(password + "\n")
            if self.as_owner:
                shutil.chown(pwfile, "postgres")
            args += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            args += ["--auth=trust"]
        subprocess.run(self.as_owner + args, check=True, capture_output=True)

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def url(self, database: str) -> str:
        auth = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgres://{auth}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            self.as_owner
            + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self.as_owner + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=True,
            capture_output=True,
        )

    def accepts_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def wait_sessions_gone(self, timeout: float = 15) -> bool:
        """Waits until no TCP session with the cluster's port is established: pg_ctl stop can
        return while a backend on a loaded machine still serves its connection for a moment."""
        deadline = time.monotonic() + timeout
        port = f"{self.port:04X}"
        while time.monotonic() < deadline:
            with open("/proc/net/tcp") as table:
                rows = [line.split() for line in table.readlines()[1:]]
            if not any(r[3] == "01" and (r[1].endswith(":" + port) or r[2].endswith(":" + port)) for r in rows):
                return True
            time.sleep(0.05)
        return False

    def destroy(self) -> None:
        subprocess.run(
            self.as_owner + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- the service


@dataclass
class Server:
    """`stylecast serve` as a child process, its output appended to `log_path`."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    starts: int = 0
    live_path: Path | None = None

    def __post_init__(self):
        # The server writes its log to memory (tmpfs) where there is one: on a machine whose
        # disk is saturated, a blocking write() of a log line would stall an actix worker
        # for seconds and time out unrelated requests. `save()` copies it to `log_path`.
        shm = Path("/dev/shm")
        directory = Path(tempfile.mkdtemp(prefix="stylecast-log-", dir=shm if shm.is_dir() else None))
        self.live_path = directory / "server.log"
        self.live_path.write_text("")

    def start(self, wait_ready: bool = True, timeout: float = 90) -> None:
        env = {**os.environ, **self.env, "STYLECAST__SERVER__PORT": str(self.port)}
        env.setdefault("STYLECAST__SERVER__HOST", "127.0.0.1")
        with open(self.live_path, "ab") as out:
            self.process = subprocess.Popen(
                [str(binary()), "serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1
        if wait_ready:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90) -> float:
        # These servers ingest and read, most without generation models: they ask about
        # what they serve, as an ingest pool behind a load balancer would.
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            check(self.alive(), f"the server exited with {self.process.returncode}; see {self.log_path}")
            try:
                if request(self.port, "GET", "/readyz?capability=ingest", timeout=5).status == 200:
                    return time.monotonic() - started
            except TransportError:
                pass
            time.sleep(0.05)
        raise CheckFailed(f"the server was not ready within {timeout}s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (graceful shutdown); returns the exit status."""
        if not self.alive():
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise CheckFailed(f"the server did not stop within {timeout}s of SIGTERM")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def log_text(self) -> str:
        return self.live_path.read_text(errors="replace")

    def save(self) -> None:
        """Kills the server if still running and keeps its log under `log_path`."""
        self.kill()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.live_path, self.log_path)
        shutil.rmtree(self.live_path.parent, ignore_errors=True)


def panics_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if "panicked at" in line or "RUST_BACKTRACE" in line]


def base_env(database_url: str, admin_key: str, models: bool) -> dict[str, str]:
    """The service's environment for a test: its own database and admin key, no scheduled
    ALS rebuilds, no per-key rate limit (the tests send faster than a client would), and
    no generation models unless the test needs them (restarts are faster without)."""
    env = {
        "DATABASE_URL": database_url,
        "STYLECAST_ADMIN_KEY": admin_key,
        "STYLECAST__EMBEDDING__REBUILD_INTERVAL_SECS": "0",
        "STYLECAST__AUTH__RATE_LIMIT_PER_SEC": "0",
        "STYLECAST__LOG__FORMAT": "json",
    }
    if not models:
        env["STYLECAST__ONNX__MODEL_DIR"] = str(Path(tempfile.mkdtemp(prefix="stylecast-nomodels-")))
    ort = ROOT / ".ort/libonnxruntime.so"
    if "ORT_DYLIB_PATH" not in os.environ and ort.exists():
        env["ORT_DYLIB_PATH"] = str(ort)
    return env


def artifacts_dir(name: str) -> Path:
    path = ROOT / "test-artifacts" / "reliability" / name
    path.mkdir(parents=True, exist_ok=True)
    return path
