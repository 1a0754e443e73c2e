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

A webhook registered with `"payload": "thin"` gets deliveries without
`data`. With WEBHOOK_API_URL and WEBHOOK_READ_KEY (an API key of scope
`read`) set, the work then starts by reading the event's current data with
`GET {WEBHOOK_API_URL}/events/{id}`.

    pip install standardwebhooks==1.1.0
    WEBHOOK_TOKEN=... WEBHOOK_SECRET=whsec_... PORT=8000 python receiver.py
    # thin deliveries: also
    WEBHOOK_API_URL=https://... WEBHOOK_READ_KEY=whk_...
"""

import hmac
import json
import os
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

TOKEN = os.environ["WEBHOOK_TOKEN"]
VERIFIER = Webhook(os.environ["WEBHOOK_SECRET"])
API_URL = os.environ.get("WEBHOOK_API_URL", "").rstrip("/")
READ_KEY = os.environ.get("WEBHOOK_READ_KEY", "")
MAX_BODY = 1024 * 1024
# Why the API has no data for an event whose `payload` is not `kept`.
NOT_KEPT = {
    "not_kept": "the tenant keeps no payloads (payload_retention_hours 0)",
    "too_large": "its data was too large to keep",
    "expired": "its data is past the tenant's payload_retention_hours",
    "deleted": "its data was deleted by the tenant",
}
work = queue.Queue()


def fetch(event):
    """A thin delivery's data, read from the API; None (and why, logged) when there is none."""
    eid = event["id"]
    # The id is signed, but quoted all the same: it must stay one path segment.
    url = f"{API_URL}/events/{urllib.parse.quote(eid, safe='')}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    # Unredirected: a redirect must not carry the key to another host.
    request.add_unredirected_header("Authorization", f"Bearer {READ_KEY}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            stored = json.load(response)
    except urllib.error.HTTPError as e:
        # The status only: an error body is not worth a log line.
        why = "no such event (never kept, or not this key's tenant)" if e.code == 404 else f"status {e.code}"
        print(f"not fetched {eid} {event['type']}: {why}", flush=True)
        return None
    except (OSError, ValueError) as e:  # unreachable, timed out, not JSON
        why = getattr(e, "reason", None) or type(e).__name__
        print(f"not fetched {eid} {event['type']}: {why}", flush=True)
        return None
    payload = stored.get("payload")
    if payload != "kept" or "data" not in stored:
        why = NOT_KEPT.get(payload, f"payload {payload!r}")
        print(f"fetched {eid} {event['type']} data=no: {why}", flush=True)
        return None
    print(f"fetched {eid} {event['type']} data=yes", flush=True)
    return stored["data"]


def handle(event_id, event):
    """The work, after the answer: here, one line per event (never its data)."""
    print(f"accepted {event_id} {event['type']}", flush=True)
    if "data" in event:
        return
    if event.get("test"):
        # A test event is not kept: there is nothing to read.
        print(f"thin test event {event_id}: nothing to fetch", flush=True)
        return
    if not (API_URL and READ_KEY):
        print(f"thin event {event_id}: set WEBHOOK_API_URL and WEBHOOK_READ_KEY to fetch its data", flush=True)
        return
    data = fetch(event)
    if data is not None:
        event = {**event, "data": data}
        # ... the work on event["data"] goes here.


def worker():
    while True:
        event_id, event = work.get()
        try:
            handle(event_id, event)
        except Exception as e:  # one bad event must not stop the worker
            print(f"failed {event_id}: {type(e).__name__}", flush=True)
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
    mode = "thin deliveries fetched" if API_URL and READ_KEY else "thin deliveries not fetched"
    print(f"listening on 127.0.0.1:{port} ({mode})", flush=True)
    server.serve_forever()
