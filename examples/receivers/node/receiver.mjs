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
//   npm install standardwebhooks@1.1.1
//   WEBHOOK_TOKEN=... WEBHOOK_SECRET=whsec_... PORT=8000 node receiver.mjs
import { createServer } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

const TOKEN = process.env.WEBHOOK_TOKEN;
const verifier = new Webhook(process.env.WEBHOOK_SECRET);
const MAX_BODY = 1024 * 1024;

/** The work, after the answer: here, one line per event (never its data). */
function handle(eventId, event) {
  console.log(`accepted ${eventId} ${event.type}`);
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
    setImmediate(() => handle(req.headers['webhook-id'], event));
  });
});

const port = Number(process.env.PORT || 8000);
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
