// A minimal receiver for the eKYC platform's webhooks, to copy (Node.js 18+).
//
// It checks what every delivery carries, in this order, and answers at once:
// 1. `Authorization: Basic <token>`: the token shown when the webhook was
//    registered, compared in constant time (crypto.timingSafeEqual);
// 2. the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
//    `webhook-signature`) with the maintained `standardwebhooks` package,
//    which also refuses a timestamp more than 5 minutes off (replays);
// 3. then it answers 200 and does the work after: the platform waits 5
//    seconds at most for the answer and sends each event once.
//
// Events may arrive out of order, and the same event id twice after a
// redelivery: keep what you did by `webhook-id`.
//
// A webhook registered with `"payload": "thin"` gets deliveries without
// `data`. With WEBHOOK_API_URL and WEBHOOK_READ_KEY (an API key of scope
// `read`) set, the work then starts by reading the event's current data with
// `GET {WEBHOOK_API_URL}/events/{id}`.
//
//   npm install standardwebhooks@1.1.1
//   WEBHOOK_TOKEN=... WEBHOOK_SECRET=whsec_... PORT=8000 node receiver.mjs
//   # thin deliveries: also
//   WEBHOOK_API_URL=https://... WEBHOOK_READ_KEY=whk_...
import { createServer } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

const TOKEN = process.env.WEBHOOK_TOKEN;
const verifier = new Webhook(process.env.WEBHOOK_SECRET);
const API_URL = (process.env.WEBHOOK_API_URL || '').replace(/\/+$/, '');
const READ_KEY = process.env.WEBHOOK_READ_KEY || '';
const MAX_BODY = 1024 * 1024;
// Why the API has no data for an event whose `payload` is not `kept`.
const NOT_KEPT = {
  not_kept: 'the tenant keeps no payloads (payload_retention_hours 0)',
  too_large: 'its data was too large to keep',
  expired: "its data is past the tenant's payload_retention_hours",
  deleted: 'its data was deleted by the tenant',
};

/** A thin delivery's data, read from the API; undefined (and why, logged) when there is none. */
async function fetchData(event) {
  const { id, type } = event;
  let res;
  try {
    // The id is signed, but encoded all the same: it must stay one path segment.
    res = await fetch(`${API_URL}/events/${encodeURIComponent(id)}`, {
      headers: { authorization: `Bearer ${READ_KEY}`, accept: 'application/json' },
      // A redirect must not carry the key to another host.
      redirect: 'error',
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    console.log(`not fetched ${id} ${type}: ${err.cause?.code || err.cause?.message || err.name}`);
    return undefined;
  }
  if (!res.ok) {
    // The status only: an error body is not worth a log line.
    const why = res.status === 404 ? "no such event (never kept, or not this key's tenant)" : `status ${res.status}`;
    console.log(`not fetched ${id} ${type}: ${why}`);
    return undefined;
  }
  let stored;
  try {
    stored = await res.json();
  } catch (err) {
    console.log(`not fetched ${id} ${type}: ${err.name}`);
    return undefined;
  }
  if (stored.payload !== 'kept' || !('data' in stored)) {
    console.log(`fetched ${id} ${type} data=no: ${NOT_KEPT[stored.payload] || `payload ${JSON.stringify(stored.payload)}`}`);
    return undefined;
  }
  console.log(`fetched ${id} ${type} data=yes`);
  return stored.data;
}

/** The work, after the answer: here, one line per event (never its data). */
async function handle(eventId, event) {
  console.log(`accepted ${eventId} ${event.type}`);
  if ('data' in event) return;
  if (event.test) {
    // A test event is not kept: there is nothing to read.
    console.log(`thin test event ${eventId}: nothing to fetch`);
    return;
  }
  if (!API_URL || !READ_KEY) {
    console.log(`thin event ${eventId}: set WEBHOOK_API_URL and WEBHOOK_READ_KEY to fetch its data`);
    return;
  }
  const data = await fetchData(event);
  if (data !== undefined) {
    event = { ...event, data };
    // ... the work on event.data goes here.
  }
}

function sameToken(header) {
  const given = Buffer.from(header || '');
  const expected = Buffer.from(`Basic ${TOKEN}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const server = createServer((req, res) => {
  const refuse = (status, why) => {
    console.log(`refused ${req.headers['webhook-id'] || '-'}: ${why}`);
    res.writeHead(status).end();
  };
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  });
  req.on('end', () => {
    if (req.method !== 'POST') return refuse(405, 'not a POST');
    if (size > MAX_BODY) return refuse(413, 'body too large');
    if (!sameToken(req.headers.authorization)) return refuse(401, 'wrong Authorization');
    const body = Buffer.concat(chunks).toString('utf8');
    let event;
    try {
      event = verifier.verify(body, req.headers);
    } catch (err) {
      return refuse(400, `signature: ${err.message}`);
    }
    res.writeHead(200).end();
    const eventId = req.headers['webhook-id'];
    // One bad event must not take the process down.
    setImmediate(() => handle(eventId, event).catch((err) => console.log(`failed ${eventId}: ${err.name}`)));
  });
});

const port = Number(process.env.PORT || 8000);
const mode = API_URL && READ_KEY ? 'thin deliveries fetched' : 'thin deliveries not fetched';
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port} (${mode})`));
