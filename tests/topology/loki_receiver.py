"""A stand-in for Grafana Loki's push endpoint, run as its own process so that a test can
stop it (an outage) and start it again on the same port.

No Loki server can run here; this receiver checks the push format Loki accepts
(``POST /loki/api/v1/push``, a JSON body of ``streams``, each with string ``stream``
labels and ``[nanosecond-timestamp-string, line]`` values) and appends every accepted
line, with its labels, to a JSON-lines file. A malformed push is answered 400 and
recorded under ``"rejected"``.

    python -m tests.topology.loki_receiver PORT OUT.jsonl
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PUSH_PATH = "/loki/api/v1/push"


def problems(body: Any) -> str | None:
    """Why Loki would refuse this push body, or None."""
    if not isinstance(body, dict) or set(body) != {"streams"}:
        return "the body is an object with only 'streams'"
    for stream in body["streams"]:
        if not isinstance(stream, dict) or set(stream) != {"stream", "values"}:
            return "each stream has 'stream' and 'values'"
        labels = stream["stream"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            return "labels are strings"
        for value in stream["values"]:
            ts, line = value
            if not (isinstance(ts, str) and ts.isdigit() and len(ts) >= 19):
                return "timestamps are nanoseconds as a string"
            if not isinstance(line, str):
                return "lines are strings"
    return None


def main(port: int, out: Path) -> None:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            if self.path != PUSH_PATH:
                self._answer(404)
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            why = (
                problems(body)
                if self.headers.get("content-type") == "application/json"
                else ("content-type is application/json")
            )
            with lock, out.open("a", encoding="utf-8") as f:
                if why is not None:
                    f.write(json.dumps({"rejected": why}) + "\n")
                else:
                    for stream in body["streams"]:
                        for _, line in stream["values"]:
                            f.write(json.dumps({"labels": stream["stream"], "line": line}) + "\n")
            self._answer(400 if why else 204)

        def do_GET(self) -> None:
            self._answer(200 if self.path == "/ready" else 404)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the accepted lines are the record

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
