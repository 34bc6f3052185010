#!/usr/bin/env python3
"""HTTP-level fuzz of the real `stylecast serve` binary: generated bad requests of every
kind (malformed JSON and NDJSON, wrong types, huge fields, bad query parameters, bad
multipart and corrupt images to /v1/generate and /v1/influencers/{i}/photos, bad paths,
bad methods, bad headers and keys, oversized bodies).

Passes when: no answer is a 5xx, the server log holds no panic, the process is alive and
healthy at the end, and every error answer is a JSON body with a `code` — except requests
the HTTP codec rejects before any route runs (an unparsable request line or header
block), which actix answers itself with an empty 400/431; those are counted apart.

    python3 tests/reliability/http_fuzz.py [--requests 10000] [--seed 1] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import random
import struct
import sys
import threading
import time
import uuid
import zlib

import common
from common import CheckFailed, Server, TransportError, check, log

PHOTO = (common.ROOT / "onnx/styles/content_heldout/coffee.png").read_bytes
STYLE_PHOTOS = [common.ROOT / f"onnx/styles/neon_nova/{n}.jpg" for n in range(3)]


def png(width: int, height: int, raw: bytes | None = None) -> bytes:
    """A grayscale PNG; with `raw` None its pixel data is all zero (a decompression bomb
    when the declared size is large)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    if raw is None:
        compressor = zlib.compressobj(9)
        row = b"\0" * (width + 1)
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    else:
        data = zlib.compress(raw)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


class Fuzzer:
    """Each generator returns (category, method, path, headers, body, codec_level)."""

    def __init__(self, rng: random.Random, key: str, port: int):
        self.rng, self.key, self.port = rng, key, port
        self.photo = PHOTO()
        self.jpeg = STYLE_PHOTOS[0].read_bytes()
        self.bomb = png(12_000, 2_500)
        self.generators = [
            (self.events_json, 22),
            (self.events_ndjson, 10),
            (self.events_content_type, 4),
            (self.oversized, 1),
            (self.query, 10),
            (self.paths, 10),
            (self.methods, 6),
            (self.auth, 10),
            (self.generate, 12),
            (self.photos, 6),
            (self.influencer_profile, 6),
            (self.codec, 1),
        ]

    def next(self):
        generators, weights = zip(*self.generators)
        return self.rng.choices(generators, weights)[0]()

    # ------------------------------------------------------------ values

    def junk_value(self):
        r = self.rng
        return r.choice(
            [
                None, True, 0, -1, 1.5e308, -0.0, r.randint(-(2**70), 2**70), "", " ", "\u0000", "\ud7ff" * 3,
                "x" * r.choice([1, 200, 5000, 100_000]), "💥" * r.randint(1, 300), [], {}, [1, 2], {"a": {"b": []}},
                "2026-13-45T99:99:99Z", "NaN", "1e999", "../../etc/passwd", "' OR 1=1 --", "%00", "\\", "\n",
            ]
        )

    def event(self):
        r = self.rng
        event = {
            "event_id": f"f{r.getrandbits(40):x}",
            "user": f"u{r.randrange(50)}",
            "influencer": f"i{r.randrange(20)}",
            "kind": r.choice(["like", "follow", "view", "unlike", "comment", "share", "unfollow"]),
            "occurred_at": "2026-11-20T10:00:00Z",
        }
        for _ in range(r.randint(1, 3)):
            field = r.choice(list(event) + ["post_id", "weight", "extra", ""])
            action = r.random()
            if action < 0.3:
                event.pop(field, None)
            else:
                event[field] = self.junk_value()
        return event

    def mangle(self, data: bytes) -> bytes:
        r = self.rng
        if not data:
            return data
        choice = r.randrange(6)
        if choice == 0:
            return data[: r.randrange(len(data))]
        if choice == 1:
            out = bytearray(data)
            for _ in range(r.randint(1, 10)):
                out[r.randrange(len(out))] = r.randrange(256)
            return bytes(out)
        if choice == 2:
            at = r.randrange(len(data))
            return data[:at] + bytes(r.randrange(256) for _ in range(r.randint(1, 50))) + data[at:]
        if choice == 3:
            return data + b"," * r.randint(1, 5) + b"]" * r.randint(0, 3)
        if choice == 4:
            return b"\xff\xfe" + data
        return data.replace(b'"', b"'", r.randint(1, 5))

    # ------------------------------------------------------------ requests

    def json_headers(self, content_type="application/json"):
        return {**common.bearer(self.key), "Content-Type": content_type}

    def events_json(self):
        r = self.rng
        kind = r.randrange(7)
        if kind == 0:
            body = json.dumps([self.event() for _ in range(r.randint(1, 30))]).encode()
        elif kind == 1:
            body = self.mangle(json.dumps([self.event() for _ in range(r.randint(1, 10))]).encode())
        elif kind == 2:
            depth = r.choice([10, 100, 1000, 100_000])
            body = b"[" * depth + b"]" * r.choice([0, depth])
        elif kind == 3:
            body = json.dumps(r.choice([{}, "x", 1, None, {"events": []}, [[]], [None] * 50])).encode()
        elif kind == 4:
            body = bytes(r.randrange(256) for _ in range(r.randint(0, 2000)))
        elif kind == 5:
            body = json.dumps([{"event_id": "x" * r.choice([300, 5000, 1_000_000]), "user": "u", "influencer": "i",
                                "kind": "like", "occurred_at": "2026-11-20T10:00:00Z"}]).encode()
        else:
            body = json.dumps([self.event()] * r.randint(1, 5)).encode().replace(b"2026", b"99999")
        return "events_json", "POST", "/v1/events", self.json_headers(), body, False

    def events_ndjson(self):
        r = self.rng
        lines = []
        for _ in range(r.randint(1, 30)):
            line = json.dumps(self.event()).encode()
            lines.append(self.mangle(line) if r.random() < 0.4 else line)
        separator = r.choice([b"\n", b"\r\n", b"\n\n", b"\x00", b" "])
        return "events_ndjson", "POST", "/v1/events", self.json_headers("application/x-ndjson"), separator.join(
            lines), False

    def events_content_type(self):
        r = self.rng
        content_type = r.choice(["text/plain", "application/xml", "", "application/json; charset=latin1",
                                 "multipart/form-data", "application/x-ndjson; boundary=x", "*/*", "a" * 5000,
                                 "application/json\u00e9"])
        body = json.dumps([self.event()]).encode()
        headers = {**common.bearer(self.key), "Content-Type": content_type.encode("utf-8")}
        return "content_type", "POST", "/v1/events", headers, body, False

    def oversized(self):
        r = self.rng
        target = r.choice(["/v1/events", "/v1/generate", "/v1/influencers/neon_nova/photos", "/v1/influencers/x"])
        method = "PUT" if target == "/v1/influencers/x" else "POST"
        size = r.choice([5_300_000, 11_000_000])
        body = b"[" + b'{"event_id":"a"},' * (size // 17) + b"{}]"
        return "oversized", method, target, self.json_headers(), body, False

    def query(self):
        r = self.rng
        path = r.choice(["/v1/users/u1/recommendations", "/v1/users/u1/interests", "/v1/users/u1",
                         "/v1/influencers/i1"])
        value = r.choice(["-1", "0", "abc", "1e3", "99999999999999999999999", "", "%FF", "1;2", "21", "5&k=6",
                          "%00", "1.5", "+3", "0x10", "💥"])
        name = r.choice(["k", "k", "limit", "k[]", "", "%ZZ"])
        query = f"{name}={value}" if r.random() < 0.9 else "&&&==&"
        return "query", "GET", f"{path}?{query}", common.bearer(self.key), None, False

    def paths(self):
        r = self.rng
        bad_id = r.choice(["", "%FF%FE", "a%00b", "x" * r.choice([200, 3000]), "%2e%2e", "..", "a b", "%20",
                           "💥", "a%2Fb", "%", "{user}", "a;b", "a?b"])
        template = r.choice(["/v1/users/{}", "/v1/users/{}/recommendations", "/v1/users/{}/interests",
                             "/v1/influencers/{}", "/v1/influencers/{}/style", "/v1/nope/{}", "//v1//users//{}",
                             "/{}", "/v1/users/{}/recommendations/extra", "/v2/users/{}"])
        path = template.format(bad_id).replace(" ", "%20")
        return "paths", "GET", path, common.bearer(self.key), None, False

    def methods(self):
        r = self.rng
        method = r.choice(["DELETE", "PATCH", "PUT", "GET", "OPTIONS", "TRACE", "FOO", "POST"])
        path = r.choice(["/v1/events", "/v1/generate", "/v1/users/u1", "/v1/influencers/i1/photos",
                         "/v1/influencers/i1/style", "/healthz", "/metrics", "/v1/users/u1/recommendations"])
        return "methods", method, path, common.bearer(self.key), b"{}" if r.random() < 0.5 else None, False

    def auth(self):
        r = self.rng
        header = r.choice(
            [
                None, "", "Bearer", "Bearer ", "Bearer x", "Basic dXNlcjpwYXNz", f"bearer {self.key}",
                f"Bearer {self.key}x", f"Bearer {self.key[:-1]}", "Bearer sck_not-a-uuid_secret",
                f"Bearer sck_{uuid.uuid4()}_{'a' * 64}", "Bearer " + "A" * 4000, f"Bearer  {self.key}",
                "Bearer \u00e9\u00e8", "Token abc", "Bearer sck___",
            ]
        )
        headers = {}
        if header is not None:
            headers["Authorization"] = header.encode("utf-8")
        target = r.choice([("POST", "/v1/events", json.dumps([self.event()]).encode()),
                           ("GET", "/v1/users/u1", None), ("PUT", "/v1/influencers/x", b'{"consent":true}'),
                           ("POST", "/v1/generate", b"x"), ("GET", "/v1/users/u1/recommendations", None)])
        headers["Content-Type"] = "application/json"
        return "auth", target[0], target[1], headers, target[2], False

    def image(self) -> bytes:
        r = self.rng
        source = r.choice([self.photo, self.jpeg])
        kind = r.randrange(8)
        if kind == 0:
            return source[: r.randrange(len(source))]
        if kind == 1:
            out = bytearray(source)
            for _ in range(r.randint(1, 40)):
                out[r.randrange(8, len(out))] = r.randrange(256)
            return bytes(out)
        if kind == 2:
            return source[:8] + bytes(r.randrange(256) for _ in range(r.randint(0, 5000)))
        if kind == 3:
            return self.bomb
        if kind == 4:
            return png(r.choice([0, 1, 70_000]), r.choice([0, 1, 70_000]), b"")
        if kind == 5:
            return r.choice([b"", b"GIF89a", b"%PDF-1.4", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"\xff\xd8\xff", b"BM"])
        if kind == 6:
            return png(4, 4, bytes(20))  # a valid, tiny image (below the model's minimum?)
        return bytes(r.randrange(256) for _ in range(r.randint(1, 3000)))

    def generate_fields(self):
        r = self.rng
        fields = {"user": "u1", "influencer": "neon_nova", "size": "32"}
        for _ in range(r.randint(1, 3)):
            name = r.choice(["user", "influencer", "mix", "strength", "size", "format", "extra", "photo"])
            value = r.choice(["", "-1", "nan", "inf", "1e400", "abc", "neon_nova=", "=1", "a=1,a=2", "a=-1",
                              ",".join(f"i{n}=1" for n in range(500)), "neon_nova=0", "neon_nova=nan", "4096",
                              "0.5", "gif", "PNG", "x" * 100_000, "\u00e9", "\xff", "\u0000", "a\u0000b"])
            if r.random() < 0.3:
                fields.pop(name, None)
            else:
                fields[name] = value
        return fields

    def generate(self):
        r = self.rng
        kind = r.randrange(6)
        headers = common.bearer(self.key)
        if kind < 3:
            parts = [(n, v.encode("utf-8", "surrogatepass"), None) for n, v in self.generate_fields().items()]
            if r.random() < 0.85:
                parts.append(("photo", self.image() if kind < 2 else self.photo, "p.png"))
            content_type, body = common.multipart(parts)
        elif kind == 3:
            content_type, body = common.multipart([("user", b"u1", None), ("photo", self.photo, "p.png")])
            body = self.mangle(body)
        elif kind == 4:
            content_type = r.choice(["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; "
                                     "boundary=zzz", "multipart/mixed; boundary=a", "image/png"])
            body = r.choice([b"", b"--zzz\r\n", b"--zzz--", self.photo[:500], b"--zzz\r\nContent-Disposition: x\r\n"])
        else:
            content_type, body = common.multipart([("photo", self.photo, "p.png")], boundary="a" * 70)
            body = body.replace(b"\r\n\r\n", b"\r\n", 1)
        headers["Content-Type"] = content_type
        return "generate", "POST", "/v1/generate", headers, body, False

    def photos(self):
        r = self.rng
        influencer = r.choice(["neon_nova", "fuzz_target", "x" * 300, "%FF"])
        headers = common.bearer(self.key)
        if r.random() < 0.5:
            headers["Content-Type"] = r.choice(["image/jpeg", "image/png", "application/octet-stream", "text/plain"])
            body = self.image()
        else:
            parts = [(r.choice(["photo", "file", ""]), self.image(), "x.jpg")]
            content_type, body = common.multipart(parts)
            headers["Content-Type"] = content_type
            if r.random() < 0.3:
                body = self.mangle(body)
        return "photos", "POST", f"/v1/influencers/{influencer}/photos", headers, body, False

    def influencer_profile(self):
        r = self.rng
        body = r.choice(
            [
                {"consent": "yes"}, {"consent": None}, {}, {"display_name": "x" * 300, "consent": True},
                {"consent": True, "extra": 1}, {"display_name": 5, "consent": False}, [], "x",
                {"display_name": "\u0000", "consent": True}, {"display_name": "a\u0007\u0000", "consent": False},
            ]
        )
        data = json.dumps(body).encode()
        if r.random() < 0.3:
            data = self.mangle(data)
        influencer = r.choice(["fuzz_target", "", "%FF", "x" * 500])
        return "profile", "PUT", f"/v1/influencers/{influencer}", self.json_headers(), data, False

    def codec(self):
        r = self.rng
        raw = r.choice(
            [
                b"GARBAGE\r\n\r\n",
                b"GET /v1/users/u1 HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /v1/users/u1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\nConnection: close\r\n\r\n",
                b"GET /v1/users/u1 HTTP/1.1\r\nHost: x\r\nBad Header\r\nConnection: close\r\n\r\n",
                b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n",
                b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
            ]
        )
        return "codec", None, None, None, raw, True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    # A private cluster: the fuzz tests input handling, and the shared server's stalls (other
    # suites' CREATE DATABASE checkpoints) would show up here as slow answers.
    pg = common.PrivatePostgres()
    pg.start()
    database_url = pg.url("stylecast")
    logs = common.artifacts_dir("http_fuzz")
    env = common.base_env(database_url, f"fuzz-admin-{uuid.uuid4()}", models=True)
    server = Server(env, logs / "server.log")
    statuses: collections.Counter = collections.Counter()
    by_category: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: list[str] = []
    timings: list[tuple] = []
    lock = threading.Lock()
    try:
        server.start()
        key = env["STYLECAST_ADMIN_KEY"]
        port = server.port
        # A styled, consenting influencer so that valid-looking generate fields go deep.
        put = common.request(port, "PUT", "/v1/influencers/neon_nova", {**common.bearer(key),
                             "Content-Type": "application/json"}, b'{"consent": true}')
        check(put.status == 200, f"setting up neon_nova: {put.status} {put.body[:200]!r}")
        for photo in STYLE_PHOTOS:
            added = common.request(port, "POST", "/v1/influencers/neon_nova/photos",
                                   {**common.bearer(key), "Content-Type": "image/jpeg"}, photo.read_bytes())
            check(added.status == 201, f"setting up neon_nova's photos: {added.status} {added.body[:200]!r}")

        rng = random.Random(args.seed)
        fuzzer = Fuzzer(rng, key, port)
        cases = [fuzzer.next() for _ in range(args.requests)]
        log(f"{common.binary()}: sending {len(cases)} generated bad requests, {args.concurrency} at a time")
        started = time.monotonic()

        def send(case):
            category, method, path, headers, body, codec_level = case
            data = body if codec_level else common.build_request(method, path, port, headers, body)
            try:
                response = common.raw_request(port, data, timeout=120)
            except TransportError as err:
                if codec_level:
                    with lock:
                        statuses["closed"] += 1
                        by_category[category]["closed"] += 1
                    return
                with lock:
                    failures.append(f"{category} {method} {path[:80]}: no response ({err})")
                return
            with lock:
                timings.append((response.seconds, category, method, (path or "")[:60], response.status))
                statuses[response.status] += 1
                by_category[category][response.status] += 1
                where = f"{category} {method} {(path or '')[:80]} -> {response.status} {response.body[:160]!r}"
                if response.status >= 500:
                    failures.append(f"5xx: {where}")
                elif response.status >= 400 and not codec_level and response.error_code() is None:
                    failures.append(f"error without a JSON code: {where}")
                elif response.status == 429 and "retry-after" not in response.headers:
                    failures.append(f"429 without Retry-After: {where}")

        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(send, cases))
        elapsed = time.monotonic() - started
        alive = server.alive()
        healthy = alive and common.request(port, "GET", "/healthz", timeout=10).status == 200
        panics = common.panics_in(server.log_text())
        summary = {
            "requests": len(cases),
            "seconds": round(elapsed, 1),
            "statuses": {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
            "five_xx": sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500),
            "errors_without_json_code": sum(1 for f in failures if f.startswith("error without")),
            "panics": len(panics),
            "process_alive": alive,
            "by_category": {c: dict(sorted(((str(k), v) for k, v in s.items()))) for c, s in sorted(by_category.items())},
        }
        log(json.dumps(summary, indent=1))
        for slow in sorted(timings, reverse=True)[:8]:
            log(f"  slowest: {slow[0]:.2f}s {slow[1:]}")
        for failure in failures[:20]:
            log(f"  {failure}")
        check(alive and healthy, "the server died or stopped answering /healthz")
        check(not panics, f"panics in the server log: {panics[:3]}")
        check(not failures, f"{len(failures)} bad answers (first: {failures[0] if failures else ''})")
        log(f"PASS: {len(cases)} bad requests, 0 x 5xx, 0 panics, every error a JSON code")
        return 0
    except CheckFailed as err:
        log(f"FAIL: {err}")
        log(f"server log: {server.log_path}")
        return 1
    finally:
        server.save()
        pg.destroy()


if __name__ == "__main__":
    sys.exit(main())
