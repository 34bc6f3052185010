#!/usr/bin/env python3
"""Secrets are never logged: a full session of the real binary with debug logging
(`RUST_LOG=debug`, every crate) against a private Postgres cluster that requires a
password — migrate, create keys with the CLI, serve, ingest, read, upload photos, generate,
bad and revoked keys, shutdown — then every captured log (the server's, the CLI's stderr,
Postgres's own log) and every HTTP answer is searched for the admin key, the created keys
and their secret parts, the analyst password and the database password. None may appear.

    python3 tests/reliability/secrets_in_logs.py
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid

import common
from common import CheckFailed, PrivatePostgres, Server, check, log


def cli(env: dict[str, str], args: list[str], log_file) -> str:
    """Runs a CLI command; its log (stderr) goes to `log_file`, its stdout is returned
    (`keys create` prints the new key there, once, by design, and nothing else)."""
    done = subprocess.run(
        [str(common.binary()), *args], cwd=common.ROOT, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=300,
    )
    log_file.write(done.stderr)
    check(done.returncode == 0, f"stylecast {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def session(pg: PrivatePostgres, log_format: str, admin_key: str, analyst_password: str) -> dict[str, str]:
    """One full session with the given log format; returns every captured text by source."""
    logs = common.artifacts_dir(f"secrets/{log_format}")
    answers: list[str] = []
    env = common.base_env(pg.url(f"stylecast_{log_format}"), admin_key, models=True)
    env.update(
        {
            "RUST_LOG": "debug",
            "STYLECAST__LOG__FORMAT": log_format,
            "STYLECAST__ANALYST__PASSWORD": analyst_password,
            "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379"),
            "STYLECAST__REDIS__KEY_PREFIX": f"secrets:{uuid.uuid4().hex}:",
        }
    )
    cli_log_path = logs / "cli.log"
    server = Server(env, logs / "server.log")
    try:
        with open(cli_log_path, "w") as cli_log:
            cli(env, ["migrate"], cli_log)
            feed = cli(env, ["keys", "create", "--name", "feed", "--scopes", "ingest,read,generate"], cli_log).strip()
            admin = cli(env, ["keys", "create", "--name", "ops", "--scopes", "admin,read"], cli_log).strip()
            for key in (feed, admin):
                check(key.startswith("sck_") and "\n" not in key, f"keys create printed more than the key: {key[:40]!r}")
            listing = cli(env, ["keys", "list"], cli_log)
            answers.append(listing)
            server.start()
            port = server.port

            def call(method, path, key, body=None, content_type="application/json", expect=None):
                headers = {"Content-Type": content_type}
                if key is not None:
                    headers["Authorization"] = f"Bearer {key}"
                response = common.request(port, method, path, headers, body)
                answers.append(json.dumps(response.headers) + response.body.decode("latin-1"))
                if expect is not None:
                    check(response.status == expect, f"{method} {path}: {response.status} {response.body[:300]!r}")
                return response

            call("PUT", "/v1/influencers/neon_nova", admin_key, b'{"display_name":"Nova","consent":true}', expect=200)
            for n in range(3):
                photo = (common.ROOT / f"onnx/styles/neon_nova/{n}.jpg").read_bytes()
                call("POST", "/v1/influencers/neon_nova/photos", admin, photo, "image/jpeg", expect=201)
            events = [
                {"event_id": f"s{n}", "user": f"u{n % 3}", "influencer": "neon_nova", "kind": "follow",
                 "occurred_at": "2026-11-20T10:00:00Z"}
                for n in range(20)
            ]
            call("POST", "/v1/events", feed, json.dumps(events).encode(), expect=200)
            call("POST", "/v1/events", feed, b"{not json", expect=400)
            for path in ("/v1/users/u1", "/v1/users/u1/recommendations", "/v1/users/u1/interests",
                         "/v1/influencers/neon_nova", "/v1/influencers/neon_nova/style", "/readyz", "/metrics"):
                call("GET", path, feed)
            content_type, body = common.multipart(
                [("user", b"u1", None), ("size", b"64", None),
                 ("photo", (common.ROOT / "onnx/styles/content_heldout/coffee.png").read_bytes(), "me.png")]
            )
            call("POST", "/v1/generate", feed, body, content_type, expect=200)
            # Bad keys: near misses of real ones, the right key in the wrong place, a missing scope.
            key_id, _, secret = feed.rpartition("_")
            for bad in (feed[:-1] + ("A" if feed[-1] != "A" else "B"), f"{key_id}_{secrets.token_urlsafe(32)}",
                        admin_key + "x", admin_key[:-1], secret, ""):
                call("GET", "/v1/users/u1", bad, expect=401)
            call("PUT", "/v1/influencers/neon_nova", feed, b'{"consent":true}', expect=403)
            for header in (f"Basic {admin_key}", f"Token {feed}", admin_key):
                response = common.request(port, "GET", "/v1/users/u1", {"Authorization": header})
                check(response.status == 401, f"Authorization {header[:6]}...: {response.status}")
            # Revoked keys are refused, and revoking logs nothing secret either.
            revoke_id = listing.split()[0] if listing.strip() else ""
            answers.append(cli(env, ["keys", "revoke", revoke_id], cli_log))
            code = server.stop()
            check(code == 0, f"the server exited with {code} after SIGTERM")
            server.start()
            revoked = feed if feed.split("_")[1] == revoke_id.replace("-", "") else admin
            call("GET", "/v1/users/u1", revoked, expect=401)
            code = server.stop()
            check(code == 0, f"the server exited with {code} after SIGTERM")
    finally:
        server_log = server.log_text()
        server.save()
    debug_lines = sum(1 for line in server_log.splitlines() if "DEBUG" in line)
    check(debug_lines > 50, f"{log_format}: only {debug_lines} debug lines: debug logging was off, nothing was tested")
    return {
        "server log": server_log,
        "CLI log": cli_log_path.read_text(),
        "HTTP answers": "\n".join(answers),
        "created key (feed)": feed,
        "created key (ops)": admin,
    }


def main() -> int:
    db_password = f"dbpw-{secrets.token_hex(12)}"
    analyst_password = f"anpw-{secrets.token_hex(12)}"
    admin_key = f"admin-{secrets.token_hex(16)}"
    pg = PrivatePostgres(password=db_password)
    try:
        pg.start()
        texts: dict[str, str] = {}
        wanted = {"admin key": admin_key, "analyst password": analyst_password, "database password": db_password}
        for log_format in ("pretty", "json"):
            captured = session(pg, log_format, admin_key, analyst_password)
            for name in ("created key (feed)", "created key (ops)"):
                token = captured.pop(name)
                wanted[f"{name}, {log_format} session"] = token
                wanted[f"{name} secret part, {log_format} session"] = token.split("_", 2)[2]
            texts.update({f"{where} ({log_format})": text for where, text in captured.items()})
        texts["Postgres log"] = pg.log_path.read_text(errors="replace")
        leaks = [f"{what} in the {where}" for what, value in wanted.items() for where, text in texts.items()
                 if value in text]
        sizes = {where: len(text.splitlines()) for where, text in texts.items()}
        log(f"searched {json.dumps(sizes)} lines for {len(wanted)} secrets")
        check(not leaks, "secrets leaked: " + "; ".join(leaks))
        log("PASS: no secret appears in any log or answer")
        return 0
    except CheckFailed as err:
        log(f"FAIL: {err}")
        log(f"logs: {common.artifacts_dir('secrets')}; Postgres log: {pg.log_path}")
        return 1
    finally:
        pg.destroy()


if __name__ == "__main__":
    sys.exit(main())
