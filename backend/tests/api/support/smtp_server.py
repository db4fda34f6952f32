"""A real SMTP server for the alert e-mail tests (aiosmtpd): AUTH LOGIN/PLAIN with one user.
Without a certificate it offers no STARTTLS; with one (PEM files of a certificate and its key,
which the tests make with a CA of their own), it requires STARTTLS before anything else.
Listens on a free port of 127.0.0.1 that it chooses itself (a port chosen by the caller could be
taken before the server binds it), prints "ready PORT", then one JSON line per accepted message;
stops when stdin closes.
Usage: smtp_server.py USER PASSWORD [CERT KEY]"""
import json
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keep:
    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data
        print(json.dumps({
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "login": login.decode() if isinstance(login, bytes) else login,
            "data": envelope.content.decode("utf-8", "replace"),
        }), flush=True)
        return "250 OK"


class OnHeldPort(Controller):
    """Serves on a socket bound before the server starts, so the port is never free between
    being chosen and being listened on."""

    def __init__(self, *args, **kwargs):
        self.sock = socket.create_server(("127.0.0.1", 0))
        super().__init__(*args, hostname="127.0.0.1", port=self.sock.getsockname()[1], **kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


def main():
    user, password = sys.argv[1].encode(), sys.argv[2].encode()
    tls = None
    if len(sys.argv) > 4:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[3], sys.argv[4])

    def check(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and data.login == user and data.password == password
        return AuthResult(success=ok, handled=ok, auth_data=data.login if ok else None)

    controller = OnHeldPort(Keep(), authenticator=check,
                            auth_required=True, auth_require_tls=tls is not None,
                            tls_context=tls, require_starttls=tls is not None)
    controller.start()
    print("ready", controller.port, flush=True)
    sys.stdin.read()
    controller.stop()


main()
