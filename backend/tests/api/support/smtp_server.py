"""A real SMTP server for the alert e-mail tests (aiosmtpd): AUTH LOGIN/PLAIN with one user.
Without a certificate it offers no STARTTLS; with one (PEM files of a certificate and its key,
which the tests make with a CA of their own), it requires STARTTLS before anything else.
Prints "ready", then one JSON line per accepted message; stops when stdin closes.
Usage: smtp_server.py PORT USER PASSWORD [CERT KEY]"""
import json
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


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
    tls = None
    if len(sys.argv) > 5:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[4], sys.argv[5])

    def check(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and data.login == user and data.password == password
        return AuthResult(success=ok, handled=ok, auth_data=data.login if ok else None)

    controller = Controller(Keep(), hostname="127.0.0.1", port=port, authenticator=check,
                            auth_required=True, auth_require_tls=tls is not None,
                            tls_context=tls, require_starttls=tls is not None)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


main()
