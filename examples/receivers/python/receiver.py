"""A minimal receiver for the eKYC platform's webhooks, to copy.

It checks what every delivery carries, in this order, and answers at once:
1. `Authorization: Basic <token>`: the token shown when the webhook was
   registered, compared in constant time (hmac.compare_digest);
2. the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
   `webhook-signature`) with the maintained `standardwebhooks` package; it
   also refuses a timestamp more than 5 minutes off (replays);
3. then it answers 200 and does the work after, on another thread: the
   platform waits 5 seconds at most for the answer and sends each event once.

Events may arrive out of order, and the same event id twice after a
redelivery: keep what you did by `webhook-id`.

    pip install standardwebhooks==1.1.0
    WEBHOOK_TOKEN=... WEBHOOK_SECRET=whsec_... PORT=8000 python receiver.py
"""

import hmac
import os
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

TOKEN = os.environ["WEBHOOK_TOKEN"]
VERIFIER = Webhook(os.environ["WEBHOOK_SECRET"])
MAX_BODY = 1024 * 1024
work = queue.Queue()


def handle(event_id, event):
    """The work, after the answer: here, one line per event (never its data)."""
    print(f"accepted {event_id} {event['type']}", flush=True)


def worker():
    while True:
        event_id, event = work.get()
        try:
            handle(event_id, event)
        finally:
            work.task_done()


class Receiver(BaseHTTPRequestHandler):
    def refuse(self, status, why):
        print(f"refused {self.headers.get('webhook-id', '-')}: {why}", flush=True)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.refuse(413, "body too large")
        body = self.rfile.read(length)
        expected = f"Basic {TOKEN}".encode()
        given = (self.headers.get("Authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            return self.refuse(401, "wrong Authorization")
        try:
            event = VERIFIER.verify(body, dict(self.headers.items()))
        # ValueError: a body that is not UTF-8, a malformed signature header.
        except (WebhookVerificationError, ValueError) as e:
            return self.refuse(400, f"signature: {e}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        work.put((self.headers["webhook-id"], event))

    def log_message(self, *args):
        pass  # the request line holds nothing useful, and headers hold the token


if __name__ == "__main__":
    threading.Thread(target=worker, daemon=True).start()
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
