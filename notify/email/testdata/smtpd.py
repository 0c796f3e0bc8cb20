"""A real SMTP submission server for the email notifier's end-to-end tests.

Run with Debian's /usr/bin/python3 (apt-get install python3-aiosmtpd):

    smtpd.py --port 2525 --dir DIR --cert CERT --key KEY --user U --password P
             [--tempfail N] [--reject-rcpt] [--no-starttls] [--implicit-tls]

It listens on 127.0.0.1 only, requires AUTH (PLAIN or LOGIN, over TLS
only), writes each accepted message to DIR/<n>.eml and prints
"ready <port>" once it accepts connections. It exits on SIGTERM or when its
standard input closes, so that it never outlives the test that started it.
"""

import argparse
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, args):
        self.dir = args.dir
        self.tempfail = args.tempfail
        self.reject_rcpt = args.reject_rcpt
        self.received = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt:
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        # Greylisting: the first N messages are told to come back later.
        # One count per message, not per recipient.
        if self.tempfail > 0 and not getattr(envelope, "greylisted", False):
            self.tempfail -= 1
            envelope.greylisted = True
            return "451 4.7.1 Greylisted, please try again later"
        if getattr(envelope, "greylisted", False):
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received += 1
        path = os.path.join(self.dir, "%d.eml" % self.received)
        # Written aside and renamed, so a reader never sees half a message;
        # the reply goes out only once the file is in place.
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Message accepted for delivery"


def authenticator(user, password, implicit_tls):
    def check(server, session, envelope, mechanism, auth_data):
        # aiosmtpd only knows about STARTTLS; in implicit mode the
        # transport itself says whether it is encrypted.
        if implicit_tls and server.transport.get_extra_info("sslcontext") is None:
            return AuthResult(success=False, handled=False)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--tempfail", type=int, default=0, help="answer 451 to the first N messages")
    p.add_argument("--reject-rcpt", action="store_true", help="answer 550 to every RCPT")
    p.add_argument("--no-starttls", action="store_true", help="do not offer STARTTLS")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    args = p.parse_args()

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)

    kwargs = dict(
        hostname="127.0.0.1",
        port=args.port,
        server_hostname="smtpd.test",
        auth_required=True,
        authenticator=authenticator(args.user, args.password, args.implicit_tls),
    )
    if args.implicit_tls:
        kwargs["ssl_context"] = tls
        # auth_require_tls looks for STARTTLS, which implicit TLS never
        # issues; the authenticator checks the transport instead.
        kwargs["auth_require_tls"] = False
    else:
        kwargs["auth_require_tls"] = True
        if not args.no_starttls:
            kwargs["tls_context"] = tls
    controller = Controller(Handler(args), **kwargs)
    controller.start()
    print("ready %d" % args.port, flush=True)
    try:
        sys.stdin.read()  # returns when the parent closes the pipe or dies
    except KeyboardInterrupt:
        pass
    controller.stop()


if __name__ == "__main__":
    main()
