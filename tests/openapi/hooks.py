"""Schemathesis hooks: a serializer for the NDJSON body of POST /v1/events.

The document describes the NDJSON body as a string (lines of JSON). Schemathesis has no
built-in serializer for application/x-ndjson, so strings go as UTF-8 (lone surrogates kept,
which exercises the service's not-UTF-8 path) and anything else as one JSON value per line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", "surrogatepass")}
    items = value if isinstance(value, list) else [value]
    return {"data": "\n".join(json.dumps(item) for item in items).encode("utf-8")}
