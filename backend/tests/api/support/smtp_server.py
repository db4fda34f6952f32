"""A real SMTP server for the alert e-mail tests (aiosmtpd): AUTH LOGIN/PLAIN with one user.
Without a folder it offers no STARTTLS; with one, it makes a CA and a certificate for localhost
signed by it (openssl), writes the CA to FOLDER/ca.pem and requires STARTTLS before anything
else. Listens on a free port of 127.0.0.1 that it chooses itself (a port chosen by the caller
could be taken before the server binds it), prints "ready PORT", then one JSON line per accepted
message; stops when stdin closes.
Usage: smtp_server.py USER PASSWORD [FOLDER]"""
import json
import os
import socket
import ssl
import subprocess
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


def certificate(folder):
    """A CA, and a certificate for localhost signed by it (a self-signed leaf is not a CA)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "1", "-subj", "/CN=telemetry test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.csr",
            "-subj", "/CN=localhost")
    with open(os.path.join(folder, "ext.cnf"), "w") as ext:
        ext.write("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "cert.pem", "-days", "1", "-extfile", "ext.cnf")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem"))
    return context


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
    tls = certificate(sys.argv[3]) if len(sys.argv) > 3 else None

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
