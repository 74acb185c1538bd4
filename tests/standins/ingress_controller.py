"""A stand-in for the platform's front door on a cloud cluster: the DNS record, and Traefik behind its
LoadBalancer, doing what the kit configures it to do (infra/platform/ingress.py). It is not Traefik.

- DNS: `resolve()` replaces `socket.getaddrinfo` for hosts under the domain (port 443 → the TLS
  port here, 80 → the plain one); a host without a record does not resolve.
- Port 443: TLS with the certificate cert-manager would have issued (a wildcard from a test CA), then
  routing by Host header to the service's address, the Host header kept (as Traefik does); an unknown
  host gets Traefik's `404 page not found`, an unreachable service a 502.
- Port 80: a permanent redirect to https, as the web entry point's redirection does.
- A host with a login (the model services' basic-auth Middleware) answers 401 with a Basic challenge
  unless the request carries it, and forwards without the Authorization header (`removeHeader`).

Faults are the states a workshop morning can find: no DNS record, the certificate not issued yet
(Traefik's own default certificate instead), an Ingress missing, the controller cut off from a
service, no redirect on port 80.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from http_standin import BackgroundServer, Request, send

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class _Listener(BackgroundServer):
    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None) -> None:
        super().__init__()
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        self._serve(server)


class IngressControllerStandIn:
    def __init__(self, routes: dict[str, str], certificate: Callable[[ssl.SSLContext], None],
                 redirect: bool = True, logins: dict[str, tuple[str, str]] | None = None) -> None:
        """`routes`: host -> the service's URL; `certificate` configures the TLS context with the
        certificate the controller presents (trustme's `configure_cert`); `logins`: host -> the
        (user, password) its Middleware admits."""
        self.routes, self.redirect, self.logins = dict(routes), redirect, dict(logins or {})
        controller = self
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate(tls)

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                secure = isinstance(self.connection, ssl.SSLSocket)
                if not secure and controller.redirect:
                    self._answer(301, b"Moved Permanently", {"Location": f"https://{host}{self.path}"})
                    return
                backend = controller.routes.get(host)
                if backend is None:
                    self._answer(404, b"404 page not found\n", {"Content-Type": "text/plain; charset=utf-8"})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if host in controller.logins:
                    given = Request(self.command, self.path, {}, self.headers, b"", None).basic_auth
                    if given != controller.logins[host]:
                        self._answer(401, b"401 Unauthorized\n", {"Content-Type": "text/plain",
                                                                   "WWW-Authenticate": 'Basic realm="traefik"'})
                        return
                    headers.pop("Authorization", None)
                try:
                    answer = requests.request(self.command, backend.rstrip("/") + self.path, headers=headers,
                                              data=body, allow_redirects=False, timeout=10)
                except requests.RequestException:
                    self._answer(502, b"Bad Gateway", {"Content-Type": "text/plain; charset=utf-8"})
                    return
                self._answer(answer.status_code, answer.content,
                             {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP})

            def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                send(self, status, data, headers)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.https = _Listener(_Handler, tls)
        self.http = _Listener(_Handler, None)

    def resolver(self, domain: str, records: set[str], real=socket.getaddrinfo):
        """A `socket.getaddrinfo` where `records` (hosts under `domain`) point at this controller."""
        ports = {443: self.https.port, 80: self.http.port}

        def getaddrinfo(host, port, *args, **kwargs):
            if isinstance(host, str) and host.endswith(f".{domain}"):
                if host not in records:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
                return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                         ("127.0.0.1", ports[int(port)]))]
            return real(host, port, *args, **kwargs)

        return getaddrinfo

    def stop(self) -> None:
        self.https.stop()
        self.http.stop()
