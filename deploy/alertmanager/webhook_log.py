"""A webhook receiver for Alertmanager that prints every alert it is sent.

One JSON object a line on standard output, per alert of each notification: the
receiver, the labels the notification was grouped by, the status (firing or resolved),
the labels, the annotations and when it started. `docker compose logs -f alert-log`
shows them; the end-to-end test reads them.
Standard library only, so any Python 3.11 image runs it.

    python webhook_log.py [--host 0.0.0.0] [--port 9095]

Alertmanager posts to any path (deploy/alertmanager/alertmanager.yml uses /alerts).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any


def alert_lines(payload: dict[str, Any]) -> list[str]:
    """The lines printed for one webhook notification (Alertmanager's payload, version 4)."""
    return [
        json.dumps(
            {
                "receiver": payload.get("receiver"),
                "group": payload.get("groupLabels", {}),
                "status": alert.get("status"),
                "labels": alert.get("labels", {}),
                "annotations": alert.get("annotations", {}),
                "startsAt": alert.get("startsAt"),
            },
            sort_keys=True,
        )
        for alert in payload.get("alerts", [])
    ]


_OUTPUT = threading.Lock()  # notifications arrive on several threads: whole lines only


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_error(400, "the body is not JSON")
            return
        with _OUTPUT:
            sys.stdout.write("".join(f"{line}\n" for line in alert_lines(payload)))
            sys.stdout.flush()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the alert lines are the log


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)  # also as PID 1 in a container, where SIGTERM has no default action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=9095, help="port to listen on")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    server = ThreadingHTTPServer((args.host, args.port), _Handler)
    print(f"webhook_log listening on {args.host}:{server.server_port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
