"""A loopback HTTP server replaying recorded responses (run as a separate process by the tests).

Usage: python recorded_server.py ROUTES_JSON PORT_FILE LOG_FILE. ROUTES_JSON maps a route key to a list of
responses ``{"status", "headers", "body"}`` served in order (the last one repeats). Route keys are
``"GET <path>"``, ``"PUT <path>"`` or ``"POST <path> <catalog>"`` (the catalog of a Kowalski query body;
``"POST <path>"`` for other bodies). Every request is
appended to LOG_FILE as one JSON line (method, path, headers, body).
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    routes_path, port_file, log_file = sys.argv[1:4]
    routes = json.loads(open(routes_path).read())
    served: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, key: str, body: str) -> None:
            with open(log_file, "a") as log:
                log.write(json.dumps({"key": key, "headers": dict(self.headers), "body": body}) + "\n")
            responses = routes.get(key)
            if not responses:
                self.send_response(404)
                self.end_headers()
                self.wfile.write(f"no route {key}".encode())
                return
            index = served.get(key, 0)
            served[key] = index + 1
            response = responses[min(index, len(responses) - 1)]
            payload = response["body"].encode()
            self.send_response(response["status"])
            for name, value in response.get("headers", {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._reply(f"GET {self.path.split('?')[0]}", "")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            catalog = (json.loads(body) if body else {}).get("query", {}).get("catalog", "")
            self._reply(f"POST {self.path} {catalog}".rstrip(), body)

        def do_PUT(self) -> None:
            self._reply(f"PUT {self.path}", self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
