"""A mail sink for the integration tests: an SMTP server (aiosmtpd) on 127.0.0.1 that keeps
every message it receives as a file in a folder.

    python sink.py FOLDER [starttls|tls CERTIFICATE KEY]

It listens on a free port and prints `ready PORT` once it accepts connections: plain SMTP, or
with the certificate and key (PEM) either STARTTLS, which it then requires before a message, or
TLS from the first byte. Each message
becomes `NNNNN.json` in FOLDER (written under a temporary name, then renamed, so a reader never
sees half a file): the envelope's sender and recipients, the subject, each part's content type
and the decoded plain-text and HTML parts, and the raw message.
"""

import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message["subject"] or ""),
            "content_type": message.get_content_type(),
            "parts": [part.get_content_type() for part in message.walk()],
            "text": None,
            "html": None,
            "raw": raw.decode("utf-8", "replace"),
        }
        for part in message.walk():
            if part.get_content_type() == "text/plain" and record["text"] is None:
                record["text"] = part.get_content()
            elif part.get_content_type() == "text/html" and record["html"] is None:
                record["html"] = part.get_content()
        name = f"{self.count:05}.json"
        partial = os.path.join(self.folder, "." + name)
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.rename(partial, os.path.join(self.folder, name))
        return "250 OK"


async def main():
    folder = sys.argv[1]
    security = sys.argv[2] if len(sys.argv) > 2 else "none"
    sink = Sink(folder)
    loop = asyncio.get_running_loop()
    if security == "none":
        server = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    else:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
        if security == "starttls":
            factory = lambda: SMTP(sink, tls_context=context, require_starttls=True)
            server = await loop.create_server(factory, "127.0.0.1", 0)
        else:
            server = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
