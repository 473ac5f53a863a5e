#!/usr/bin/env python3
"""A real SMTP server for tests/sinks_email.rs (aiosmtpd, installed by scripts/install-deps).

Usage: smtp_server.py --dir DIR [--tls starttls|tls|none] [--auth USER:PASSWORD]

- Makes its own CA and a server certificate for 127.0.0.1 with the openssl command and
  writes the CA to DIR/ca.pem (the sink trusts it through `tls_ca_file`).
- Listens on 127.0.0.1 on a free port and prints "READY <port>" once it accepts.
- With --tls starttls it offers STARTTLS and refuses MAIL before it; with --tls tls it speaks
  TLS from the first byte. With --auth it requires AUTH (PLAIN, LOGIN) over TLS.
- Writes each accepted message to DIR/msg-<n>.eml (the raw message) and DIR/msg-<n>.json
  (the envelope), each complete before it appears (written, then renamed).
- Misbehaves when told: DIR/control.json maps a step ("mail", "rcpt", "data", "auth") to a
  reply such as "451 4.3.0 Try again later" (answered every time) or to a list of replies
  (answered one per command, in order; once the list is empty the step succeeds). A
  "rcpt" reply applies to every recipient; "auth" makes the login fail with its reply.
- Counts every DATA command it answered, accepted or not, in DIR/attempts.
"""

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOCK = threading.Lock()


def make_certificates(directory):
    ca_key = os.path.join(directory, "ca.key")
    ca_pem = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    pem = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
        "-out", ca_pem, "-days", "2", "-subj", "/CN=courier test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
        "-CAcreateserial", "-out", pem, "-days", "2", "-extfile", ext)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem, key)
    return context


def control_reply(directory, step):
    """The reply the test asked for at `step`, or None to behave."""
    path = os.path.join(directory, "control.json")
    with LOCK:
        try:
            with open(path) as f:
                control = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        reply = control.get(step)
        if isinstance(reply, list):
            if not reply:
                return None
            first = reply.pop(0)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(control, f)
            os.replace(tmp, path)
            return first
        return reply


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = control_reply(self.directory, "mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = control_reply(self.directory, "rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with LOCK:
            attempts = os.path.join(self.directory, "attempts")
            with open(attempts, "a") as f:
                f.write("1\n")
        reply = control_reply(self.directory, "data")
        if reply:
            return reply
        with LOCK:
            self.count += 1
            n = self.count
        base = os.path.join(self.directory, "msg-%04d" % n)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".jtmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "received_at": time.time()}, f)
        os.replace(base + ".jtmp", base + ".json")
        os.replace(base + ".tmp", base + ".eml")
        return "250 Message accepted for delivery"


def authenticator(directory, user, password):
    def check(server, session, envelope, mechanism, auth_data):
        reply = control_reply(directory, "auth")
        if reply:
            return AuthResult(success=False, handled=False, message=reply)
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        return AuthResult(success=ok)
    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls", default="starttls", choices=["starttls", "tls", "none"])
    parser.add_argument("--auth", default=None)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    # Always made, so that a test can point a TLS sink at a plain server.
    context = make_certificates(args.dir)
    kwargs = {}
    if args.tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif args.tls == "tls":
        kwargs.update(ssl_context=context)
    if args.auth:
        user, password = args.auth.split(":", 1)
        kwargs.update(authenticator=authenticator(args.dir, user, password),
                      auth_required=True, auth_require_tls=args.tls != "none")
    # A free port: bind one, release it, and let the controller take it.
    import socket
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    controller = Controller(Handler(args.dir), hostname="127.0.0.1", port=port,
                            server_hostname="127.0.0.1", ready_timeout=20, **kwargs)
    controller.start()
    print("READY %d" % port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
