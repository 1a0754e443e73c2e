// The dashboard, end to end, in Debian's Chromium driven by playwright-core,
// against the local stack on moto (started by scripts/browser-test, which sets
// API, KEY and SCREENSHOTS; QUEUE, TENANT and WEBHOOKS to emit events with the
// CLI). A receiver on 127.0.0.1 gets the deliveries.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { X509Certificate, createHash, createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const API = process.env.API;
const KEY = process.env.KEY;
const SCREENSHOTS = process.env.SCREENSHOTS;
assert.ok(API && KEY && SCREENSHOTS, 'run through scripts/browser-test (API, KEY and SCREENSHOTS)');

const XSS = '<img src=x onerror=alert(1)>';
let context;
let page;
let profile;
let receiver;
const received = [];
const refused = [];
const dialogs = [];
// What the page wrote to its console: a secret typed must never be there.
const consoleLines = [];
const state = {};

function receiverUrl() {
  return `http://127.0.0.1:${receiver.address().port}/hook`;
}

async function apiGet(path) {
  const r = await fetch(`${API}/${path}`, { headers: { Authorization: `Bearer ${KEY}` } });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

/** A Standard Webhooks signature, computed here apart from the code under test. */
function sign(secret, id, timestamp, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
  return `v1,${mac}`;
}

before(async () => {
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (state.down) {
        // An outage: counted apart, answered 503.
        refused.push({ headers: req.headers });
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('down');
        return;
      }
      received.push({ headers: req.headers, raw: req.rawHeaders, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('received by the e2e receiver');
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  mkdirSync(SCREENSHOTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'dashboard-e2e-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-quic', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('console', (m) => consoleLines.push(m.text()));
  page.on('pageerror', (e) => { throw e; });
});

after(async () => {
  await context?.close();
  receiver?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test('a wrong API key is refused with a clear message, then the right one signs in (keyboard only)', async () => {
  await page.goto(`${API}/dashboard`);
  await page.getByLabel('API key').fill('whk_not-a-real-key');
  await page.keyboard.press('Enter');
  await page.getByText('That API key was not accepted').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  await page.getByLabel('API key').fill(KEY);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Your webhooks' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('webhooks.apiKey')), KEY);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
});

test('the API names a bad field and the page shows it beside that field', async () => {
  await page.getByRole('link', { name: 'New Webhook' }).click();
  await page.getByRole('heading', { name: 'New Webhook' }).waitFor();
  state.prefilled = await page.getByLabel('Authorization token').inputValue();
  assert.match(state.prefilled, /^[A-Za-z0-9+/]{43}=$/, 'a base64 token of 32 bytes is pre-filled');

  await page.getByLabel('URL').fill('ftp://hooks.example.com/x');
  await page.getByLabel(/async\.completed/).check();
  await page.getByRole('button', { name: 'Submit' }).click();
  const urlError = page.locator('#url-error');
  await urlError.filter({ hasText: 'scheme' }).waitFor();
  assert.equal(await page.locator('#events-error').textContent(), '');
  assert.equal(await page.getByLabel('URL').getAttribute('aria-invalid'), 'true');
});

test('creating a webhook with the pre-filled token and two events shows its secrets once', async () => {
  await page.getByLabel('URL').fill(receiverUrl());
  assert.ok(await page.locator('#url-http-note').isVisible(), 'an http URL shows the note');
  await page.getByLabel(/flowx\.completed/).check();
  await page.getByLabel('Description (optional)').fill(XSS);
  await page.screenshot({ path: join(SCREENSHOTS, 'new-webhook.png'), fullPage: true });
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.getByRole('heading', { name: 'Webhook created' }).waitFor();
  await page.getByText('they will not be shown in full again').waitFor();
  assert.equal(await page.locator('#created-token').textContent(), state.prefilled);
  state.secret = await page.locator('#created-secret').textContent();
  assert.match(state.secret, /^whsec_/);
  await page.getByRole('button', { name: 'Copy token' }).click();
  await page.getByText(/Token (copied|selected)/).waitFor();

  const list = await apiGet('webhooks');
  const created = list.body.data.find((w) => w.url === receiverUrl());
  assert.ok(created, 'the webhook exists through the API');
  assert.deepEqual(created.events, ['async.completed', 'flowx.completed']);
  assert.equal(created.description, XSS);
  assert.notEqual(created.token, state.prefilled, 'reads mask the token');
  state.id = created.id;
});

test('the list shows the webhook with its status and events', async () => {
  await page.getByRole('link', { name: 'Back to the list' }).click();
  const row = page.locator('#webhook-list tr', { hasText: receiverUrl() });
  await row.waitFor();
  assert.match(await row.textContent(), /active/);
  assert.match(await row.textContent(), /async\.completed, flowx\.completed/);
  await row.getByText('none yet').waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'list.png'), fullPage: true });
});

test('a description with markup is shown as text and runs nothing', async () => {
  await page.getByRole('link', { name: receiverUrl() }).click();
  await page.getByRole('heading', { name: receiverUrl() }).waitFor();
  assert.equal(await page.getByLabel('Description (optional)').inputValue(), XSS);
  assert.equal(await page.locator('img').count(), 0, 'no element was made from the description');
  assert.deepEqual(dialogs, [], 'no script ran');
});

test('a test event sent from the page reaches the receiver, signed, and shows in the log', async () => {
  await page.getByLabel('Event type', { exact: true }).selectOption('flowx.completed');
  await page.getByRole('button', { name: 'Send test event' }).click();
  await page.locator('#test-result').getByText('HTTP 200').waitFor();
  assert.match(await page.locator('#test-result').textContent(), /delivered/);
  assert.match(await page.locator('#test-result').textContent(), /received by the e2e receiver/);
  const row = page.locator('#delivery-log tbody tr').first();
  await row.waitFor();
  assert.match(await row.textContent(), /flowx\.completed/);
  assert.match(await row.textContent(), /test/);
  assert.match(await row.textContent(), /delivered/);

  assert.equal(received.length, 1);
  const { headers, body } = received[0];
  assert.equal(headers.authorization, `Basic ${state.prefilled}`);
  assert.equal(headers['webhook-signature'], sign(state.secret, headers['webhook-id'], headers['webhook-timestamp'], body));
  assert.equal(JSON.parse(body.toString()).type, 'flowx.completed');
  await page.screenshot({ path: join(SCREENSHOTS, 'webhook.png'), fullPage: true });
});

test('the status switch turns the webhook inactive and back', async () => {
  const toggle = page.getByRole('switch');
  await toggle.focus();
  await page.keyboard.press('Space');
  await page.locator('#status-text', { hasText: /^Inactive$/ }).waitFor();
  assert.equal((await apiGet(`webhooks/${state.id}`)).body.status, 'inactive');
  await page.keyboard.press('Space');
  await page.locator('#status-text', { hasText: /^Active$/ }).waitFor();
  assert.equal((await apiGet(`webhooks/${state.id}`)).body.status, 'active');
});

test('rotating the token shows the new one once, and deliveries use it', async () => {
  await page.getByRole('button', { name: 'Generate a new token' }).click();
  const revealed = page.locator('#revealed-token');
  await revealed.waitFor();
  const token = await revealed.textContent();
  assert.notEqual(token, state.prefilled);
  assert.equal(await page.locator('#token-mask').textContent(), `****${token.slice(-4)}`);
  await page.getByRole('button', { name: 'Send test event' }).click();
  await page.waitForFunction(() => document.querySelectorAll('#delivery-log tbody tr').length === 2);
  assert.equal(received.length, 2);
  assert.equal(received[1].headers.authorization, `Basic ${token}`);
});

test('the health chart draws what the stats API says, with a text alternative', async () => {
  const stats = (await apiGet(`webhooks/${state.id}/stats?window=24h`)).body;
  assert.equal(stats.delivered, 2, 'the two test events');
  const chart = page.locator('svg#health-chart');
  await page.waitForFunction(() => document.querySelector('#health-chart-desc')?.textContent.includes('2 delivered'));
  assert.equal(await chart.getAttribute('role'), 'img');
  assert.equal(await chart.getAttribute('aria-labelledby'), 'health-chart-title health-chart-desc');
  const drawn = await page.locator('#health-chart g.bucket').evaluateAll((gs) => gs.map((g) => ({
    start: g.dataset.start, delivered: Number(g.dataset.delivered), failed: Number(g.dataset.failed),
  })));
  assert.deepEqual(drawn, stats.buckets.map((b) => ({ start: b.start, delivered: b.delivered, failed: b.failed })));
  assert.match(await page.locator('#health-chart-desc').textContent(), /2 attempts over the last 24h: 2 delivered, 0 failed \(100 % delivered\)/);
  // Screen readers also get every bucket as a table.
  assert.equal(await page.locator('#health-table tbody tr').count(), 24);
  assert.ok(await page.locator('#health-chart polyline.p95').count() <= 1);
  await page.getByRole('button', { name: '7d', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('#health-chart g.bucket').length === 7);
  assert.equal(await page.getByRole('button', { name: '7d', exact: true }).getAttribute('aria-pressed'), 'true');
  await page.screenshot({ path: join(SCREENSHOTS, 'health.png'), fullPage: true });
  await page.getByRole('button', { name: '24h', exact: true }).click();
  // The list shows each webhook's success rate over the last 24 hours.
  await page.getByRole('link', { name: '← All webhooks' }).click();
  const row = page.locator('#webhook-list tr', { hasText: receiverUrl() });
  await row.locator('td.rate', { hasText: '100 % delivered' }).waitFor();
  await page.getByRole('link', { name: receiverUrl() }).click();
  await page.getByRole('heading', { name: receiverUrl() }).waitFor();
});

test('the delivery log filters by outcome and event type, and shows one attempt in full with its secrets masked', async () => {
  const rows = page.locator('#delivery-log tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 2);
  await page.getByLabel('Filter by outcome').selectOption('timeout');
  await page.getByText('No deliveries match these filters.').waitFor();
  await page.getByLabel('Filter by outcome').selectOption('delivered');
  await page.waitForFunction(() => document.querySelectorAll('#delivery-log tbody tr').length === 2);
  await page.getByLabel('Filter by event type').selectOption('async.completed');
  await page.getByText('No deliveries match these filters.').waitFor();
  await page.getByLabel('Filter by event type').selectOption('flowx.completed');
  await page.waitForFunction(() => document.querySelectorAll('#delivery-log tbody tr').length === 2);
  await page.getByLabel('Filter by time').selectOption('1');
  await page.waitForFunction(() => document.querySelectorAll('#delivery-log tbody tr').length === 2);

  await rows.first().getByRole('button', { name: /^Details of attempt 1 of evt_/ }).click();
  const request = page.locator('#attempt-request');
  await request.waitFor();
  const sent = await request.textContent();
  const latest = received[received.length - 1];
  assert.match(sent, /^POST http:\/\/127\.0\.0\.1:\d+\/hook\n/);
  assert.match(sent, /Authorization: Basic \*\*\*\*\n/);
  assert.match(sent, /webhook-signature: v1,\*\*\*\*\n/);
  assert.ok(sent.includes(`webhook-id: ${latest.headers['webhook-id']}`), sent);
  const token = latest.headers.authorization.replace('Basic ', '');
  const panel = await page.locator('#attempt-detail').textContent();
  assert.ok(!panel.includes(token), 'the token is never shown');
  assert.ok(!panel.includes(latest.headers['webhook-signature'].slice(3)), 'nor the signature');
  assert.match(await page.locator('#attempt-response').textContent(), /^HTTP 200\n\nreceived by the e2e receiver$/);
  await page.screenshot({ path: join(SCREENSHOTS, 'attempt.png'), fullPage: true });
  await page.getByRole('button', { name: 'Close' }).click();
  await page.getByLabel('Filter by outcome').selectOption('');
  await page.getByLabel('Filter by event type').selectOption('');
  await page.getByLabel('Filter by time').selectOption('');
});

/** Sends a producer's event through the events queue, as the platform does. */
function emit(type, data, subject) {
  return execFileSync(process.env.WEBHOOKS, ['emit', '--queue-url', process.env.QUEUE, '--tenant', process.env.TENANT,
    '--type', type, '--data', JSON.stringify(data), ...(subject ? ['--subject', subject] : [])], { encoding: 'utf8' }).trim();
}

/** Calls the API with the test's key (or another). */
function apiCall(method, path, body, key = KEY) {
  return fetch(`${API}/${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function until(what, check, seconds = 30) {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('after an outage, one confirmed click resends each failed delivery once, with its webhook-id', async () => {
  // Delivered before the outage, then three while the receiver is down.
  const before = emit('async.completed', { n: 0 });
  await until('the first event', () => received.some((r) => r.headers['webhook-id'] === before));
  state.down = true;
  const missed = [1, 2, 3].map((n) => emit('async.completed', { n }));
  await until('the outage\'s attempts', () => refused.length >= 3);
  await until('their records', async () => (await apiGet(`webhooks/${state.id}/deliveries?outcome=http_error`)).body.data.length === 3);
  state.down = false;
  const delivered = received.length;

  await page.reload();
  await page.getByRole('heading', { name: 'Resend failed deliveries' }).waitFor();
  await page.getByRole('button', { name: 'Resend failed deliveries…' }).click();
  const question = page.locator('#recover-question');
  await question.waitFor();
  assert.match(await question.textContent(), /^Resend 3 failed deliveries since /);
  await page.screenshot({ path: join(SCREENSHOTS, 'recover.png'), fullPage: true });
  await page.getByRole('button', { name: 'Yes, resend 3' }).click();
  await page.locator('#recover-done', { hasText: 'Queued 3 failed deliveries.' }).waitFor();
  await until('the resent events', () => received.length >= delivered + 3);
  await new Promise((r) => setTimeout(r, 1000));
  const resent = received.slice(delivered).map((r) => r.headers['webhook-id']).sort();
  assert.deepEqual(resent, [...missed].sort(), 'each missed event once, with its own webhook-id');
  assert.ok(!resent.includes(before), 'the event delivered before is not sent again');

  // Nothing is left to resend.
  await page.getByRole('button', { name: 'Resend failed deliveries…' }).click();
  await page.locator('#recover-result', { hasText: 'Nothing to resend' }).waitFor();
});

test('an attempt shows its event\'s subject and payload, and the payload is deleted after confirmation', async () => {
  const id = emit('async.completed', { n: 4 }, 'req_browser-1');
  await until('the event', () => received.some((r) => r.headers['webhook-id'] === id));
  const delivered = JSON.parse(received.find((r) => r.headers['webhook-id'] === id).body.toString());
  assert.equal(delivered.subject, 'req_browser-1');
  assert.deepEqual(delivered.data, { n: 4 }, 'a full webhook gets the data');
  await until('its record', async () => (await apiGet(`webhooks/${state.id}/deliveries?limit=1`)).body.data[0]?.event_id === id);

  await page.reload();
  await page.getByRole('button', { name: `Details of attempt 1 of ${id}` }).click();
  await page.locator('#attempt-subject', { hasText: 'req_browser-1' }).waitFor();
  assert.equal(await page.locator('#attempt-payload').textContent(), 'kept');
  const sent = await page.locator('#attempt-request').textContent();
  assert.match(sent, /"subject": "req_browser-1"/);
  assert.match(sent, /"n": 4/);

  await page.getByRole('button', { name: 'Delete payload' }).click();
  await page.getByRole('button', { name: 'Keep the payload' }).click();
  assert.equal((await apiGet(`events/${id}`)).body.payload, 'kept', 'keeping it deletes nothing');
  await page.getByRole('button', { name: 'Delete payload' }).click();
  await page.getByRole('button', { name: 'Yes, delete the payload' }).click();
  await page.locator('#attempt-payload', { hasText: /^deleted$/ }).waitFor();
  await page.locator('#status', { hasText: `Deleted the payload of ${id}.` }).waitFor();
  assert.match(await page.locator('#attempt-request').textContent(), /data was deleted; its body is not shown/);
  assert.equal(await page.getByRole('button', { name: 'Delete payload' }).count(), 0, 'nothing left to delete');
  const event = (await apiGet(`events/${id}`)).body;
  assert.equal(event.payload, 'deleted');
  assert.equal(event.data, undefined);
  assert.equal(event.subject, 'req_browser-1', 'the event stays, with its subject');
  await page.getByRole('button', { name: 'Close' }).click();
});

test('the page is usable on a phone-sized screen', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1200, height: 900 });
});

test('delete asks for confirmation, then removes the webhook', async () => {
  await page.getByRole('button', { name: 'Delete webhook' }).click();
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await apiGet(`webhooks/${state.id}`)).status, 200, 'cancel deletes nothing');
  await page.getByRole('button', { name: 'Delete webhook' }).click();
  await page.getByRole('button', { name: 'Yes, delete it' }).click();
  await page.getByRole('heading', { name: 'Your webhooks' }).waitFor();
  await page.getByText('Webhook deleted.').waitFor();
  assert.equal((await apiGet(`webhooks/${state.id}`)).status, 404);
});

test('API keys: a new key is shown once, listed by its first characters, and revoked after confirmation', async () => {
  await page.getByRole('link', { name: 'API keys' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await page.getByLabel('Name').fill('reporting');
  await page.getByLabel('Scope').selectOption('read');
  await page.getByRole('button', { name: 'Create API key' }).click();
  await page.getByRole('heading', { name: 'API key created' }).waitFor();
  await page.getByText('they will not be shown in full again').waitFor();
  const key = await page.locator('#created-api-key').textContent();
  assert.match(key, /^whk_[A-Za-z0-9_-]{43}$/);
  const call = (method, path) => fetch(`${API}/${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: method === 'GET' ? undefined : '{}',
  });
  assert.equal((await call('GET', 'webhooks')).status, 200, 'the new key reads');
  const refused = await call('POST', 'webhooks');
  assert.equal(refused.status, 403, 'a read key changes nothing');
  assert.equal((await refused.json()).error.code, 'insufficient_scope');

  await page.getByRole('link', { name: 'Back to the API keys' }).click();
  const row = page.locator('#api-key-list tbody tr', { hasText: 'reporting' });
  await row.waitFor();
  assert.match(await row.textContent(), /read/);
  assert.match(await row.textContent(), /active/);
  assert.ok((await row.textContent()).includes(key.slice(0, 8)), 'listed by its first characters');
  assert.ok(!(await page.content()).includes(key.slice(8)), 'the key itself is not shown again');
  await page.screenshot({ path: join(SCREENSHOTS, 'api-keys.png'), fullPage: true });

  await row.getByRole('button', { name: /^Revoke/ }).click();
  await row.getByRole('button', { name: 'Keep it' }).click();
  const kept = (await apiGet('api-keys')).body.data.find((k) => k.name === 'reporting');
  assert.equal(kept.status, 'active', 'keeping it revokes nothing');
  await row.getByRole('button', { name: /^Revoke/ }).click();
  await row.getByRole('button', { name: 'Yes, revoke it' }).click();
  await page.getByText(/^API key .*reporting.* revoked\.$/).waitFor();
  await page.locator('#api-key-list tbody tr', { hasText: 'reporting' }).getByText('revoked').waitFor();
  const revoked = (await apiGet('api-keys')).body.data.find((k) => k.name === 'reporting');
  assert.equal(revoked.status, 'revoked');
  assert.ok(revoked.revoked_at);
});

test('API keys: a key is revoked with the keys made with it in one confirmation', async () => {
  const make = async (maker, name) => {
    const r = await fetch(`${API}/api-keys`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${maker}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, scope: 'full' }),
    });
    assert.equal(r.status, 201);
    return (await r.json()).key;
  };
  const lead = await make(KEY, 'lead');
  const made = await make(lead, 'made-by-lead');
  // The page lists the keys as they were: read them again.
  await page.reload();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  const row = page.locator('#api-key-list tbody tr', { hasText: 'lead' }).filter({ hasNotText: 'made-by-lead' });
  await row.getByRole('button', { name: /^Revoke/ }).click();
  await row.getByLabel(/Also revoke the key made with it/).check();
  await row.getByRole('button', { name: 'Yes, revoke it' }).click();
  await page.getByText(/^API key .*lead.* revoked\.$/).waitFor();
  const keys = (await apiGet('api-keys')).body.data;
  for (const name of ['lead', 'made-by-lead']) {
    assert.equal(keys.find((k) => k.name === name).status, 'revoked', `${name} revoked`);
  }
  const refused = await fetch(`${API}/webhooks`, { headers: { Authorization: `Bearer ${made}` } });
  assert.equal(refused.status, 401, 'the key made with it no longer works');
});

test('the key the page signed in with, the only full one, cannot be revoked', async () => {
  const own = page.locator('#api-key-list tbody tr', { hasText: KEY.slice(0, 8) });
  await own.getByRole('button', { name: /^Revoke/ }).click();
  await own.getByRole('button', { name: 'Yes, revoke it' }).click();
  await page.locator('#status.error', { hasText: 'last active full-scope key' }).waitFor();
  assert.equal((await apiGet('webhooks')).status, 200, 'the key still works');
});

test('a thin webhook is made with the form, shows its payload, and gets no data', async () => {
  const thinUrl = receiverUrl().replace(/hook$/, 'thin');
  await page.locator('#nav').getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('link', { name: 'New Webhook' }).click();
  await page.getByRole('heading', { name: 'New Webhook' }).waitFor();
  assert.equal(await page.getByLabel('Payload', { exact: true }).inputValue(), 'full', 'full by default');
  await page.getByLabel('URL').fill(thinUrl);
  await page.getByLabel(/async\.completed/).check();
  await page.getByLabel('Payload', { exact: true }).selectOption({ label: 'Thin: reference only, the receiver fetches the data' });
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.getByRole('heading', { name: 'Webhook created' }).waitFor();
  const created = (await apiGet('webhooks')).body.data.find((w) => w.url === thinUrl);
  assert.ok(created, 'the webhook exists through the API');
  assert.equal(created.payload, 'thin');

  await page.getByRole('link', { name: 'Go to the webhook' }).click();
  await page.getByRole('heading', { name: thinUrl }).waitFor();
  assert.equal(await page.locator('#payload-text').textContent(), 'Thin: reference only, the receiver fetches the data');
  assert.equal(await page.getByLabel('Payload', { exact: true }).inputValue(), 'thin');
  await page.getByRole('button', { name: 'Send test event' }).click();
  await page.locator('#test-result').getByText('HTTP 200').waitFor();
  const body = JSON.parse(received[received.length - 1].body.toString());
  assert.equal(body.type, 'async.completed');
  assert.ok(!('data' in body), 'a thin delivery carries no data');

  // The edit form changes it back.
  await page.getByLabel('Payload', { exact: true }).selectOption('full');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#payload-text', { hasText: /^Full event$/ }).waitFor();
  assert.equal((await apiGet(`webhooks/${created.id}`)).body.payload, 'full');
  assert.equal((await apiCall('DELETE', `webhooks/${created.id}`)).status, 204);
});

/** The body of the Settings form's PATCH of `id`, once the API has answered it. */
async function saved(id) {
  const answered = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url() === `${API}/webhooks/${id}`);
  const body = await requestOf('PATCH', `webhooks/${id}`, () => page.getByRole('button', { name: 'Save changes' }).click());
  await answered;
  return body;
}

/** The custom headers' rows of the form shown, as {name, value, secret, placeholder}. */
function headerRows(form) {
  return page.locator(`${form} .header-row`).evaluateAll((rows) => rows.map((r) => ({
    name: r.querySelector('input.header-name').value,
    value: r.querySelector('input.header-value').value,
    secret: r.querySelector('input[type=checkbox]').checked,
    placeholder: r.querySelector('input.header-value').placeholder,
  })));
}

/** The header line of the webhook's page: each header as shown. */
function headerSummary() {
  return page.locator('#headers-summary .header-item').allTextContents();
}

/** Asserts that `secret` is nowhere the page keeps: its HTML, its text, its inputs, its URL, the tab's storage, the console. */
async function nowhere(secret) {
  assert.ok(!(await page.content()).includes(secret), 'not in the HTML');
  const kept = await page.evaluate(() => [
    document.body.innerText, location.href,
    ...[...document.querySelectorAll('input, textarea')].map((i) => i.value),
    ...Object.values(localStorage), ...Object.values(sessionStorage),
  ]);
  assert.ok(!kept.some((text) => text.includes(secret)), 'not in the text, an input, the URL or the storage');
  assert.ok(!consoleLines.some((line) => line.includes(secret)), 'not in the console');
}

test('custom headers: made with the form, a secret masked on the page and through the API, both sent to the receiver verbatim', async () => {
  const url = receiverUrl().replace(/hook$/, 'gateway');
  state.gateway = { url, secret: 'gw-key-0123456789-ABCDEF' };
  await page.locator('#nav').getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('link', { name: 'New Webhook' }).click();
  await page.getByRole('heading', { name: 'New Webhook' }).waitFor();
  await page.getByRole('group', { name: 'Custom headers' }).getByText('cannot replace Authorization').waitFor();
  assert.deepEqual(await headerRows('#new-webhook-form'), [], 'no header by default');
  await page.getByLabel('URL').fill(url);
  await page.getByLabel(/async\.completed/).check();

  const add = page.getByRole('button', { name: 'Add header' });
  await add.click();
  await page.getByLabel('Header 1 name', { exact: true }).fill('X-Gateway-Key');
  await page.getByLabel('Header 1 value', { exact: true }).fill(state.gateway.secret);
  await page.getByLabel('Header 1 secret', { exact: true }).check();
  await add.click();
  await page.getByLabel('Header 2 name', { exact: true }).fill('X-Route');
  await page.getByLabel('Header 2 value', { exact: true }).fill('eu-1');
  await add.click(); // left empty: not sent
  const body = await requestOf('POST', 'webhooks', () => page.getByRole('button', { name: 'Submit' }).click());
  assert.deepEqual(body.headers, [
    { name: 'X-Gateway-Key', value: state.gateway.secret, secret: true },
    { name: 'X-Route', value: 'eu-1', secret: false },
  ]);
  await page.getByRole('heading', { name: 'Webhook created' }).waitFor();
  await nowhere(state.gateway.secret);
  const masked = [
    { name: 'X-Gateway-Key', value: '****CDEF', secret: true },
    { name: 'X-Route', value: 'eu-1', secret: false },
  ];
  const created = (await apiGet('webhooks')).body.data.find((w) => w.url === url);
  assert.ok(created, 'the webhook exists through the API');
  assert.deepEqual(created.headers, masked, 'the list shows the secret masked');
  state.gateway.id = created.id;
  assert.deepEqual((await apiGet(`webhooks/${created.id}`)).body.headers, masked, 'and so does the webhook');

  await page.getByRole('link', { name: 'Go to the webhook' }).click();
  await page.getByRole('heading', { name: url }).waitFor();
  assert.deepEqual(await headerSummary(), ['X-Gateway-Key: ****CDEF', 'X-Route: eu-1']);
  assert.match(await page.locator('#headers-summary').textContent(), /^Headers: X-Gateway-Key: \*\*\*\*CDEF, X-Route: eu-1$/);
  assert.deepEqual(await headerRows('#edit-form'), [
    { name: 'X-Gateway-Key', value: '', secret: true, placeholder: 'unchanged (secret)' },
    { name: 'X-Route', value: 'eu-1', secret: false, placeholder: 'Value' },
  ]);
  await nowhere(state.gateway.secret);

  await page.getByRole('button', { name: 'Send test event' }).click();
  await page.locator('#test-result').getByText('HTTP 200').waitFor();
  const got = received.filter((r) => r.headers['x-route'] === 'eu-1');
  assert.equal(got.length, 1, 'the test event, once');
  const [sent] = got;
  assert.equal(sent.headers['x-gateway-key'], state.gateway.secret);
  assert.equal(sent.headers['x-route'], 'eu-1');
  // Each once, in order, the values verbatim (names are case-insensitive: HTTP/1 clients may write them in lower case).
  const pairs = [];
  for (let i = 0; i < sent.raw.length; i += 2) pairs.push([sent.raw[i].toLowerCase(), sent.raw[i + 1]]);
  assert.deepEqual(pairs.filter(([n]) => n.startsWith('x-')), [['x-gateway-key', state.gateway.secret], ['x-route', 'eu-1']]);
  await nowhere(state.gateway.secret);
});

test('custom headers: a plain value changed and the secret left empty keeps it; a reserved name is refused beside the field', async () => {
  const { id, secret } = state.gateway;
  await page.getByLabel('Header 2 value', { exact: true }).fill('eu-2');
  let patch = await saved(id);
  assert.deepEqual(patch.headers, [{ name: 'X-Gateway-Key', secret: true }, { name: 'X-Route', value: 'eu-2', secret: false }],
    'the secret is sent without a value, to be kept');
  await page.locator('#headers-summary', { hasText: 'X-Route: eu-2' }).waitFor();
  assert.deepEqual(await headerSummary(), ['X-Gateway-Key: ****CDEF', 'X-Route: eu-2']);
  const kept = [
    { name: 'X-Gateway-Key', value: '****CDEF', secret: true },
    { name: 'X-Route', value: 'eu-2', secret: false },
  ];
  assert.deepEqual((await apiGet(`webhooks/${id}`)).body.headers, kept, 'the mask unchanged');
  await page.getByRole('button', { name: 'Send test event' }).click();
  await until('the test event', () => received.some((r) => r.headers['x-route'] === 'eu-2'));
  const sent = received.find((r) => r.headers['x-route'] === 'eu-2');
  assert.equal(sent.headers['x-gateway-key'], secret, 'the secret value kept');

  // Unchanged: not sent.
  patch = await saved(id);
  assert.ok(!('headers' in patch), 'unchanged: not sent');

  // A name the platform sets: the API's message beside the field, nothing changed.
  const name = page.getByLabel('Header 2 name', { exact: true });
  await name.fill('Content-Type');
  await page.getByRole('button', { name: 'Save changes' }).click();
  const error = page.locator('#edit-form #headers-error');
  await error.filter({ hasText: 'Content-Type' }).waitFor();
  assert.match(await error.textContent(), /headers\[1\]\.name: "Content-Type" is set by the platform/);
  assert.equal(await name.getAttribute('aria-invalid'), 'true', 'the row the API names');
  await page.locator('#status.error', { hasText: 'Nothing was changed' }).waitFor();
  assert.deepEqual((await apiGet(`webhooks/${id}`)).body.headers, kept, 'nothing changed');
  assert.deepEqual(await headerSummary(), ['X-Gateway-Key: ****CDEF', 'X-Route: eu-2']);

  // A held secret shown in the clear, or kept under another name: refused on the page.
  await name.fill('X-Route');
  await page.getByLabel('Header 1 secret', { exact: true }).uncheck();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await error.filter({ hasText: 'its secret value is never shown' }).waitFor();
  assert.equal(await page.getByLabel('Header 1 value', { exact: true }).getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Header 1 secret', { exact: true }).check();
  assert.deepEqual((await apiGet(`webhooks/${id}`)).body.headers, kept, 'nothing changed');

  // A new secret typed: sent, masked with its own last characters, gone from its input.
  const fresh = 'gw-key-rotated-0000-WXYZ';
  await page.getByLabel('Header 1 value', { exact: true }).fill(fresh);
  patch = await saved(id);
  assert.deepEqual(patch.headers[0], { name: 'X-Gateway-Key', value: fresh, secret: true });
  await page.locator('#headers-summary', { hasText: 'X-Gateway-Key: ****WXYZ' }).waitFor();
  assert.equal(await page.locator('#edit-form #headers-error').textContent(), '');
  assert.deepEqual(await headerRows('#edit-form'), [
    { name: 'X-Gateway-Key', value: '', secret: true, placeholder: 'unchanged (secret)' },
    { name: 'X-Route', value: 'eu-2', secret: false, placeholder: 'Value' },
  ]);
  assert.equal((await apiGet(`webhooks/${id}`)).body.headers[0].value, '****WXYZ');
  await nowhere(fresh);
  await nowhere(secret);
  state.gateway.secret = fresh;
});

test('custom headers: one removed, then up to 10 ("Add header" disabled at the limit)', async () => {
  const { id } = state.gateway;
  await page.getByRole('button', { name: 'Remove header 2', exact: true }).click();
  assert.equal(await page.locator('#edit-form .header-row').count(), 1);
  let patch = await saved(id);
  assert.deepEqual(patch.headers, [{ name: 'X-Gateway-Key', secret: true }]);
  await page.locator('#headers-summary', { hasText: /^Headers: X-Gateway-Key: \*\*\*\*WXYZ$/ }).waitFor();
  assert.deepEqual((await apiGet(`webhooks/${id}`)).body.headers, [{ name: 'X-Gateway-Key', value: '****WXYZ', secret: true }]);

  const add = page.locator('#edit-form').getByRole('button', { name: 'Add header' });
  for (let n = 2; n <= 10; n += 1) {
    assert.ok(await add.isEnabled(), `enabled with ${n - 1} rows`);
    await add.click();
    await page.getByLabel(`Header ${n} name`, { exact: true }).fill(`X-Extra-${n}`);
    await page.getByLabel(`Header ${n} value`, { exact: true }).fill(`value ${n}`);
  }
  assert.ok(await add.isDisabled(), 'disabled at 10');
  assert.equal(await page.locator('#edit-form .header-row').count(), 10);
  // One removed: a row may be added again, and the rows are numbered anew.
  await page.getByRole('button', { name: 'Remove header 5', exact: true }).click();
  assert.ok(await add.isEnabled());
  assert.equal(await page.getByLabel('Header 5 name', { exact: true }).inputValue(), 'X-Extra-6');
  await add.click();
  await page.getByLabel('Header 10 name', { exact: true }).fill('X-Extra-5');
  await page.getByLabel('Header 10 value', { exact: true }).fill('value 5');
  assert.ok(await add.isDisabled());
  patch = await saved(id);
  assert.equal(patch.headers.length, 10);
  await page.locator('#headers-summary', { hasText: 'X-Extra-5: value 5' }).waitFor();
  const held = (await apiGet(`webhooks/${id}`)).body.headers;
  assert.deepEqual(held.map((h) => h.name),
    ['X-Gateway-Key', 'X-Extra-2', 'X-Extra-3', 'X-Extra-4', 'X-Extra-6', 'X-Extra-7', 'X-Extra-8', 'X-Extra-9', 'X-Extra-10', 'X-Extra-5']);
  assert.equal(held[0].value, '****WXYZ', 'the secret kept');
  assert.ok(await add.isDisabled(), 'still disabled with the 10 held shown again');
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling with 10 headers (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1200, height: 900 });
});

test('custom headers: a name or value with markup is shown as text', async () => {
  const { id } = state.gateway;
  // A value may hold markup (visible ASCII): the summary shows it as text.
  await page.getByRole('button', { name: 'Remove header 10', exact: true }).click();
  await page.getByRole('button', { name: 'Add header' }).click();
  await page.getByLabel('Header 10 name', { exact: true }).fill('X-Markup');
  await page.getByLabel('Header 10 value', { exact: true }).fill(XSS);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#headers-summary', { hasText: `X-Markup: ${XSS}` }).waitFor();
  assert.equal((await apiGet(`webhooks/${id}`)).body.headers[9].value, XSS);
  assert.equal(await page.getByLabel('Header 10 value', { exact: true }).inputValue(), XSS);
  // A name cannot: the API's message quotes it, and it is shown as text.
  await page.getByLabel('Header 10 name', { exact: true }).fill(XSS);
  await page.getByRole('button', { name: 'Save changes' }).click();
  const error = page.locator('#edit-form #headers-error');
  await error.filter({ hasText: 'is not a header name' }).waitFor();
  assert.ok((await error.textContent()).includes(XSS));
  assert.equal(await page.locator('img').count(), 0, 'no element was made from a header');
  assert.deepEqual(dialogs, [], 'no script ran');
  assert.equal((await apiGet(`webhooks/${id}`)).body.headers[9].name, 'X-Markup', 'nothing changed');
  await nowhere(state.gateway.secret);
  assert.equal((await apiCall('DELETE', `webhooks/${id}`)).status, 204);
});

// A test-only client identity: ECDSA P-256, self-signed, CN=relay.acme.example,
// valid until 2126. It identifies nothing and is trusted nowhere. Made once with
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
//     -subj "/CN=relay.acme.example" -keyout key.pem -out cert.pem
// (Node reads certificates but cannot make one.)
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIUXLx5r5sbKw9btJ95VJfgY+auySMwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwScmVsYXkuYWNtZS5leGFtcGxlMCAXDTI2MTIwMzE1NTg1OVoY
DzIxMjYxMTA5MTU1ODU5WjAdMRswGQYDVQQDDBJyZWxheS5hY21lLmV4YW1wbGUw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ++92Se2JSy+Ya+jotVPxLfQB52wht
5ykCQyumjAyFrFXK7XlFmzRf2njxHA5MaV9W99vLasFLYXfxOXjK20Ujo1MwUTAd
BgNVHQ4EFgQUx/GJ5d+m7bFOj/nlOZNZokaZTpkwHwYDVR0jBBgwFoAUx/GJ5d+m
7bFOj/nlOZNZokaZTpkwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF
AiAUaq/egW1BLC4RW05T234IlL+9+gELmwn23sSs0M8JbAIhAOgSPQdFh+SDEMgx
q138MIsQHaTTG0hfJB3Ykcw8H9jC
-----END CERTIFICATE-----
`;
// Its private key (PKCS#8), test-only like the certificate.
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWGzenvVOudk79yz2
2B5KrvjIq+onMWaZi50bNwDuJgqhRANCAAQ++92Se2JSy+Ya+jotVPxLfQB52wht
5ykCQyumjAyFrFXK7XlFmzRf2njxHA5MaV9W99vLasFLYXfxOXjK20Uj
-----END PRIVATE KEY-----
`;
// Another test-only P-256 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256):
// not the certificate's.
const OTHER_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgRds50CQXQKb0wIOm
eS0a99VJ0DIFK3awkCu4PLW5p6uhRANCAASKZMdzBhcvFQcKWn+nx9rS7AwBApwR
QCgZ/2/Z+JQK3lmlj7m6hlAEhnLUKkeH18bf+5OK/sqz2Xi1IuOeR6Pd
-----END PRIVATE KEY-----
`;
// SHA-256 of the certificate (DER), computed here apart from the code under test.
const TEST_CERT_SHA256 = createHash('sha256').update(new X509Certificate(TEST_CERT).raw).digest('hex');

/**
 * A PEM key's base64 lines that only the private key holds: the last line
 * of an EC key is its public point, which the certificate carries too.
 */
function keyLines(pem) {
  const lines = pem.split('\n').filter((l) => l && !l.startsWith('-----') && !TEST_CERT.includes(l));
  assert.ok(lines.length >= 2, 'the lines that hold the private scalar');
  return lines;
}

/** `nowhere` for each secret: the client secret, and every line of each key that holds its private part. */
async function nowhereAll(...secrets) {
  for (const secret of secrets) await nowhere(secret);
}

/** The OAuth2 fields and certificate text areas of the form shown (`form`: a selector). */
function authFields(form) {
  const f = page.locator(form);
  return {
    basic: f.getByLabel('Basic token'),
    oauth2: f.getByLabel('OAuth2 client credentials'),
    tokenUrl: f.getByLabel('Token endpoint', { exact: true }),
    clientId: f.getByLabel('Client ID', { exact: true }),
    secret: f.getByLabel('Client secret', { exact: true }),
    scope: f.getByLabel('Scope (optional)', { exact: true }),
    method: f.getByLabel('Client authentication method', { exact: true }),
    certificate: f.getByLabel('Certificate chain (PEM, leaf first)'),
    key: f.getByLabel('Private key (PEM, unencrypted)'),
    ca: f.getByLabel('CA for this endpoint (PEM, optional)'),
  };
}

/**
 * Sends a test event from the webhook's page and gives the result's text.
 * The tenant may send 3 test events per 10 seconds, and the tests before
 * send theirs in quick succession: refused for that, it waits its turn once.
 */
async function sendTestEvent() {
  const result = page.locator('#test-result');
  for (let tries = 0; ; tries += 1) {
    await page.getByRole('button', { name: 'Send test event' }).click();
    await result.locator('.panel, .error-box').waitFor();
    const text = await result.textContent();
    const wait = /test events of the last 10 seconds; try again in (\d+) s/.exec(text);
    if (!wait || tries) return text;
    await new Promise((r) => setTimeout(r, (Number(wait[1]) + 1) * 1000));
  }
}

test('receiver authentication: OAuth2 client credentials and a client certificate made with the form, stored, and neither secret ever shown', async () => {
  const url = 'https://receiver.example.com/mtls';
  const clientSecret = 'relay-secret-0123456789-abcd';
  state.auth = { url, clientSecret, secrets: [clientSecret, ...keyLines(TEST_KEY), ...keyLines(OTHER_KEY)] };
  await page.locator('#nav').getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('link', { name: 'New Webhook' }).click();
  await page.getByRole('heading', { name: 'New Webhook' }).waitFor();
  const group = page.getByRole('group', { name: 'Receiver authentication' });
  await group.waitFor();
  const f = authFields('#new-webhook-form');
  assert.ok(await f.basic.isChecked(), 'the Basic token by default');
  assert.equal(await f.tokenUrl.isVisible(), false, 'OAuth2\'s fields hidden until chosen');
  assert.equal(await f.key.isVisible(), false, 'no certificate until asked for');
  assert.equal(await f.secret.getAttribute('type'), 'password');
  await page.getByLabel('URL').fill(url);
  await page.getByLabel(/async\.completed/).check();

  await f.oauth2.check();
  await f.tokenUrl.fill('https://auth.bank.example/token');
  await f.clientId.fill('bank-relay');
  await f.secret.fill(clientSecret);
  await f.scope.fill('webhooks.write');
  assert.equal(await f.method.inputValue(), 'client_secret_basic', 'HTTP Basic by default');
  await f.method.selectOption('client_secret_post');
  await group.getByLabel('Present a client certificate').check();
  await f.certificate.fill(TEST_CERT);
  await f.key.fill(TEST_KEY);
  await f.ca.fill(TEST_CERT);
  await page.setViewportSize({ width: 390, height: 844 });
  let overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling with every field shown (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1200, height: 900 });

  const body = await requestOf('POST', 'webhooks', () => page.getByRole('button', { name: 'Submit' }).click());
  assert.deepEqual(body.oauth2, {
    token_url: 'https://auth.bank.example/token', client_id: 'bank-relay', auth_method: 'client_secret_post',
    scope: 'webhooks.write', client_secret: clientSecret,
  });
  assert.deepEqual(body.client_tls, { certificate: TEST_CERT, private_key: TEST_KEY, ca: TEST_CERT });
  await page.getByRole('heading', { name: 'Webhook created' }).waitFor();
  await nowhereAll(...state.auth.secrets);

  const created = (await apiGet('webhooks')).body.data.find((w) => w.url === url);
  assert.ok(created, 'the webhook exists through the API');
  state.auth.id = created.id;
  const held = (await apiGet(`webhooks/${created.id}`)).body;
  assert.deepEqual(held.oauth2, {
    token_url: 'https://auth.bank.example/token', client_id: 'bank-relay', client_secret: '****abcd',
    scope: 'webhooks.write', auth_method: 'client_secret_post',
  });
  assert.equal(held.client_tls.fingerprint, TEST_CERT_SHA256);
  assert.equal(held.client_tls.subject, 'CN=relay.acme.example');
  assert.equal(held.client_tls.ca_fingerprint, TEST_CERT_SHA256, 'the CA given (the same self-signed certificate)');
  assert.deepEqual(Object.keys(held.client_tls).sort(), ['ca_fingerprint', 'fingerprint', 'not_after', 'subject'], 'never the key');
  assert.deepEqual(created.oauth2, held.oauth2, 'the list shows the same');
  state.auth.notAfter = held.client_tls.not_after;

  await page.getByRole('link', { name: 'Go to the webhook' }).click();
  await page.getByRole('heading', { name: url }).waitFor();
  assert.equal(await page.locator('#auth-summary').textContent(), 'Authorization: OAuth2 client credentials (client bank-relay at auth.bank.example)');
  const day = await page.evaluate((t) => new Date(t).toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' }), held.client_tls.not_after);
  const start = TEST_CERT_SHA256.slice(0, 16);
  assert.equal(await page.locator('#identity-summary').textContent(),
    `Client certificate: CN=relay.acme.example, expires ${day}, SHA-256 ${start}…; CA SHA-256 ${start}…`);

  // The Settings form starts with what is held, the secrets empty.
  const e = authFields('#edit-form');
  assert.ok(await e.oauth2.isChecked());
  assert.equal(await e.tokenUrl.inputValue(), 'https://auth.bank.example/token');
  assert.equal(await e.clientId.inputValue(), 'bank-relay');
  assert.equal(await e.secret.inputValue(), '', 'the client secret is never read back');
  assert.equal(await e.secret.getAttribute('placeholder'), 'kept unless typed again (****abcd)');
  assert.equal(await e.scope.inputValue(), 'webhooks.write');
  assert.equal(await e.method.inputValue(), 'client_secret_post');
  const heldIdentity = page.locator('#edit-form #client-tls-held');
  assert.match(await heldIdentity.textContent(), /CN=relay\.acme\.example/);
  assert.ok((await heldIdentity.textContent()).includes(TEST_CERT_SHA256), 'the whole fingerprint');
  assert.ok(await page.locator('#edit-form').getByLabel('Keep it').isChecked(), 'kept unless changed');
  assert.equal(await e.key.isVisible(), false);
  assert.equal(await e.key.inputValue(), '', 'a key is never read back');
  await page.locator('#edit-form #auth-field').screenshot({ path: join(SCREENSHOTS, 'receiver-auth.png') });

  // At 390 px, with the held identity and the text areas to replace it shown.
  await page.locator('#edit-form').getByLabel(/^Replace it/).check();
  await e.key.waitFor();
  await page.setViewportSize({ width: 390, height: 844 });
  overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling on the webhook's page (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.locator('#edit-form').getByLabel('Keep it').check();
  assert.equal(await e.key.isVisible(), false);
  await nowhereAll(...state.auth.secrets);
});

test('receiver authentication: a save without the secret typed keeps it; a test event whose token cannot be had is a token error', async () => {
  const { id } = state.auth;
  const e = authFields('#edit-form');
  await e.scope.fill('webhooks.write webhooks.read');
  let patch = await saved(id);
  assert.deepEqual(patch.oauth2, {
    token_url: 'https://auth.bank.example/token', client_id: 'bank-relay', auth_method: 'client_secret_post',
    scope: 'webhooks.write webhooks.read',
  }, 'no client_secret: the API keeps the one held');
  assert.ok(!('client_tls' in patch), 'an identity left alone is not sent');
  await page.locator('#status', { hasText: 'Changes saved.' }).waitFor();
  const now = (await apiGet(`webhooks/${id}`)).body;
  assert.equal(now.oauth2.client_secret, '****abcd', 'the same secret held');
  assert.equal(now.oauth2.scope, 'webhooks.write webhooks.read');
  assert.equal(now.client_tls.fingerprint, TEST_CERT_SHA256, 'the identity kept');
  assert.equal(await e.secret.inputValue(), '');
  assert.match(await e.secret.getAttribute('placeholder'), /\*\*\*\*abcd/);

  // Unchanged: neither is sent.
  patch = await saved(id);
  assert.ok(!('oauth2' in patch) && !('client_tls' in patch), JSON.stringify(patch));

  // auth.bank.example does not resolve: no token, nothing sent, its own outcome.
  const result = await sendTestEvent();
  assert.match(result, /^Outcome: token error · \d+ ms/, result);
  const row = page.locator('#delivery-log tbody tr').first();
  await row.locator('.badge', { hasText: /^token error$/ }).waitFor();
  const log = (await apiGet(`webhooks/${id}/deliveries`)).body.data;
  assert.deepEqual(log.map((d) => d.outcome), ['token_error'], 'the one attempt, through the API');
  // The filter offers it (a filtered listing is one of the tenant's 30 costly reads a minute: one here).
  const filtered = page.waitForResponse((r) => r.url().includes(`/webhooks/${id}/deliveries?`) && r.url().includes('outcome=token_error'));
  await page.getByLabel('Filter by outcome').selectOption({ label: 'token error' });
  assert.equal((await filtered).status(), 200);
  await page.waitForFunction(() => document.querySelectorAll('#delivery-log tbody tr').length === 1);
  await page.locator('#delivery-log tbody tr').first().getByRole('button', { name: /^Details of attempt 1 of / }).click();
  assert.match(await page.locator('#attempt-request').textContent(), /\nAuthorization: Bearer \*\*\*\*\n/);
  await page.getByRole('button', { name: 'Close' }).click();
  await page.getByLabel('Filter by outcome').selectOption('');
  await nowhereAll(...state.auth.secrets);
});

test('receiver authentication: a key that does not match, or a new token endpoint without the secret, is refused beside its field and changes nothing', async () => {
  const { id } = state.auth;
  const before = (await apiGet(`webhooks/${id}`)).body;
  const form = page.locator('#edit-form');
  const e = authFields('#edit-form');
  await form.getByLabel(/^Replace it/).check();
  await e.certificate.fill(TEST_CERT);
  await e.key.fill(OTHER_KEY);
  let patch = await saved(id);
  assert.equal(patch.client_tls.private_key, OTHER_KEY);
  const keyError = form.locator('[data-error-for="client_tls.private_key"]');
  await keyError.filter({ hasText: 'does not match' }).waitFor();
  assert.equal(await e.key.getAttribute('aria-invalid'), 'true', 'the key\'s text area is marked');
  assert.ok(await e.key.evaluate((area) => area === document.activeElement), 'and focused');
  await page.locator('#status.error', { hasText: 'Nothing was changed' }).waitFor();
  assert.deepEqual((await apiGet(`webhooks/${id}`)).body.client_tls, before.client_tls, 'nothing changed');
  assert.match(await page.locator('#identity-summary').textContent(), new RegExp(TEST_CERT_SHA256.slice(0, 16)));

  // The secret held goes only to the endpoint it was given for: a new one needs it typed again.
  await form.getByLabel('Keep it').check();
  await e.tokenUrl.fill('https://auth2.bank.example/token');
  patch = await saved(id);
  assert.ok(!('client_tls' in patch), 'kept: not sent');
  assert.ok(!('client_secret' in patch.oauth2));
  const secretError = form.locator('[data-error-for="oauth2.client_secret"]');
  await secretError.filter({ hasText: 'token_url changes' }).waitFor();
  assert.equal(await e.secret.getAttribute('aria-invalid'), 'true');
  assert.equal(await keyError.textContent(), '', 'the earlier error is gone');
  // An http token endpoint: refused beside its own input.
  await e.tokenUrl.fill('http://auth.bank.example/token');
  await e.secret.fill('another-secret-000000000000');
  await saved(id);
  await form.locator('[data-error-for="oauth2.token_url"]').filter({ hasText: 'https' }).waitFor();
  assert.equal(await e.tokenUrl.getAttribute('aria-invalid'), 'true');
  const after = (await apiGet(`webhooks/${id}`)).body;
  assert.deepEqual(after.oauth2, before.oauth2, 'nothing changed');
  assert.deepEqual(after.client_tls, before.client_tls);
  await e.tokenUrl.fill('https://auth.bank.example/token');
  await e.secret.fill('');
});

test('receiver authentication: the client certificate removed, then back to the Basic token, and the Activity page names both', async () => {
  const { id, clientSecret } = state.auth;
  const form = page.locator('#edit-form');
  const e = authFields('#edit-form');
  await form.getByLabel(/^Remove it/).check();
  await page.locator('#client-tls-remove-note').waitFor();
  let patch = await saved(id);
  assert.strictEqual(patch.client_tls, null);
  assert.ok(!('oauth2' in patch), 'the credentials left alone');
  await page.locator('#identity-summary', { hasText: /^Client certificate: none$/ }).waitFor();
  let now = (await apiGet(`webhooks/${id}`)).body;
  assert.strictEqual(now.client_tls, null);
  assert.equal(now.oauth2.client_secret, '****abcd', 'the secret still held');
  assert.equal(await form.getByLabel('Present a client certificate').isChecked(), false, 'none held: none presented');
  assert.equal(await e.key.inputValue(), '', 'the key typed earlier left its text area');
  // Every secret typed on this page is gone from it: the refused key, the refused client secret.
  await nowhereAll(...state.auth.secrets, 'another-secret-000000000000');

  await e.basic.check();
  assert.equal(await e.tokenUrl.isVisible(), false);
  patch = await saved(id);
  assert.strictEqual(patch.oauth2, null, 'back to the Basic token');
  await page.locator('#auth-summary', { hasText: /^Authorization: Basic token$/ }).waitFor();
  now = (await apiGet(`webhooks/${id}`)).body;
  assert.strictEqual(now.oauth2, null);
  assert.ok(await e.basic.isChecked());
  assert.equal(await e.tokenUrl.inputValue(), '', 'nothing held to show');
  await nowhere(clientSecret);

  // The Activity page names both changes by what the log keeps: the client and its host, the certificate's fingerprint.
  await page.locator('#nav').getByRole('link', { name: 'Activity' }).click();
  await page.getByRole('heading', { name: 'Activity', level: 2 }).waitFor();
  await page.getByLabel('Filter by action').selectOption('webhook.updated');
  await until('the updates', async () => {
    const rows = await activityRows();
    return rows.length >= 2 && rows.every((r) => r.action === 'webhook.updated');
  }, 10);
  const [toBasic, removed] = await activityRows();
  assert.ok(toBasic.changes.includes('oauth2: client bank-relay at auth.bank.example → none'), toBasic.changes.join('; '));
  const day = await page.evaluate((t) => new Date(t).toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' }), state.auth.notAfter);
  assert.ok(removed.changes.includes(`client_tls: SHA-256 ${TEST_CERT_SHA256.slice(0, 16)}…, expires ${day} → none`), removed.changes.join('; '));
  await nowhereAll(...state.auth.secrets);
  assert.deepEqual(dialogs, [], 'no script ran');
  assert.equal((await apiCall('DELETE', `webhooks/${id}`)).status, 204);
});

/**
 * Sets (and removes) attributes of a webhook's item in the local stack's
 * table on moto, as the dispatcher would: boto3 from the repository's venv
 * (scripts/moto made it, and exported the endpoint and credentials).
 */
function writeWebhookItem(id, set, remove = []) {
  const python = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));
  const script = `
import json, sys, boto3
a = json.loads(sys.argv[1])
names = {f"#s{i}": k for i, k in enumerate(a["set"])}
names.update({f"#r{i}": k for i, k in enumerate(a["remove"])})
expression = "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(a["set"])))
if a["remove"]:
    expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(a["remove"])))
boto3.client("dynamodb").update_item(
    TableName=a["table"], Key={"PK": {"S": a["pk"]}, "SK": {"S": a["sk"]}},
    UpdateExpression=expression, ConditionExpression="attribute_exists(PK)",
    ExpressionAttributeNames=names,
    ExpressionAttributeValues={f":s{i}": {"S": v} for i, v in enumerate(a["set"].values())})
`;
  // The table and tenant scripts/browser-test starts the local stack with.
  execFileSync(python, ['-c', script, JSON.stringify({
    table: 'webhooks-browser', pk: `TENANT#${process.env.TENANT}`, sk: `WEBHOOK#${id}`, set, remove,
  })]);
}

/** The JSON body of the page's next `method` request to `path` of the API, once `action` has run. */
async function requestOf(method, path, action) {
  const seen = page.waitForRequest((r) => r.method() === method && r.url() === `${API}/${path}`);
  await action();
  return (await seen).postDataJSON();
}

test('a throttle: refused beside its field out of range, saved with the form, changed and removed', async () => {
  const url = receiverUrl().replace(/hook$/, 'throttled');
  await page.locator('#nav').getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('link', { name: 'New Webhook' }).click();
  await page.getByRole('heading', { name: 'New Webhook' }).waitFor();
  const throttle = page.getByLabel('Throttle (deliveries per second)');
  assert.equal(await throttle.inputValue(), '', 'no cap by default');
  assert.deepEqual(await throttle.evaluate((i) => [i.type, i.min, i.max, i.step]), ['number', '1', '10000', '1']);
  await page.getByLabel('URL').fill(url);
  await page.getByLabel(/async\.completed/).check();

  // The form does not validate in the browser (min=1 blocks nothing): the API judges.
  await throttle.fill('0');
  const refusedBody = await requestOf('POST', 'webhooks', () => page.getByRole('button', { name: 'Submit' }).click());
  assert.equal(refusedBody.throttle_rate, 0, 'sent as a number');
  const error = page.locator('#throttle_rate-error');
  await error.filter({ hasText: /from 1 to 10000/ }).waitFor();
  assert.equal(await throttle.getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('#url-error').textContent(), '');
  assert.ok(!(await apiGet('webhooks')).body.data.some((w) => w.url === url), 'nothing was created');

  await throttle.fill('25');
  const body = await requestOf('POST', 'webhooks', () => page.getByRole('button', { name: 'Submit' }).click());
  assert.strictEqual(body.throttle_rate, 25);
  await page.getByRole('heading', { name: 'Webhook created' }).waitFor();
  const created = (await apiGet('webhooks')).body.data.find((w) => w.url === url);
  assert.ok(created, 'the webhook exists through the API');
  assert.equal(created.throttle_rate, 25);

  await page.getByRole('link', { name: 'Go to the webhook' }).click();
  await page.getByRole('heading', { name: url }).waitFor();
  assert.equal(await page.locator('#throttle-text').textContent(), 'at most 25 deliveries per second');
  assert.equal(await throttle.inputValue(), '25');
  assert.equal(await page.locator('#failing-banner').count(), 0, 'no banner for a webhook that does not fail');

  // Changed in the edit form; left alone, it is not sent.
  await throttle.fill('40');
  let patch = await requestOf('PATCH', `webhooks/${created.id}`, () => page.getByRole('button', { name: 'Save changes' }).click());
  assert.strictEqual(patch.throttle_rate, 40);
  await page.locator('#throttle-text', { hasText: /^at most 40 deliveries per second$/ }).waitFor();
  assert.equal((await apiGet(`webhooks/${created.id}`)).body.throttle_rate, 40);
  patch = await requestOf('PATCH', `webhooks/${created.id}`, () => page.getByRole('button', { name: 'Save changes' }).click());
  assert.ok(!('throttle_rate' in patch), 'unchanged: not sent');

  // Out of range in the edit form: the API's message beside the field, nothing changed.
  await throttle.fill('10001');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#edit-form #throttle_rate-error').filter({ hasText: /from 1 to 10000/ }).waitFor();
  assert.equal((await apiGet(`webhooks/${created.id}`)).body.throttle_rate, 40);

  // Emptied: null removes the cap.
  await throttle.fill('');
  patch = await requestOf('PATCH', `webhooks/${created.id}`, () => page.getByRole('button', { name: 'Save changes' }).click());
  assert.strictEqual(patch.throttle_rate, null);
  await page.locator('#throttle-text', { hasText: /^no cap$/ }).waitFor();
  assert.equal(await page.locator('#edit-form #throttle_rate-error').textContent(), '');
  const removed = (await apiGet(`webhooks/${created.id}`)).body;
  assert.ok('throttle_rate' in removed, 'always in the answer');
  assert.equal(removed.throttle_rate, null);

  // While deliveries wait under the throttle, the page says since when
  // (the API's answer is amended here: a real wait needs a burst).
  const since = new Date(Date.now() - 90 * 1000).toISOString();
  const route = `${API}/webhooks/${created.id}`;
  await page.route(route, async (r) => {
    if (r.request().method() !== 'GET') return r.fallback();
    const response = await r.fetch();
    return r.fulfill({ response, json: { ...(await response.json()), throttle_rate: 5, throttled_since: since } });
  });
  try {
    await page.reload();
    await page.getByRole('heading', { name: url }).waitFor();
    const local = await page.evaluate((t) => new Date(t).toLocaleString(), since);
    assert.equal(await page.locator('#throttled-note').textContent(), `Deliveries waiting under the throttle since ${local}.`);
    assert.equal(await page.locator('#throttle-text').textContent(), 'at most 5 deliveries per second');
  } finally {
    await page.unroute(route);
  }
  assert.equal((await apiCall('DELETE', `webhooks/${created.id}`)).status, 204);
});

test('a failing webhook turned off by the platform: a banner, and one click re-enables it and resends what failed', async () => {
  const url = receiverUrl().replace(/hook$/, 'failing');
  const made = await apiCall('POST', 'webhooks', { url, events: ['async.completed'] });
  assert.equal(made.status, 201);
  const { id } = await made.json();
  // One event fails (503) ...
  state.down = true;
  let failed;
  try {
    failed = emit('async.completed', { n: 5 });
    await until('its attempt', () => refused.some((r) => r.headers['webhook-id'] === failed));
    await until('its record', async () => (await apiGet(`webhooks/${id}/deliveries?outcome=http_error`)).body.data.length === 1);
  } finally {
    state.down = false;
  }
  // ... and the platform has turned the webhook off (written as the dispatcher would).
  const since = new Date(Date.now() - 3600 * 1000);
  since.setMilliseconds(0);
  const failingSince = since.toISOString().replace('.000Z', 'Z');
  const lastError = `status 503 ${XSS}`;
  const reason = `every attempt has failed since ${failingSince}; turned off by the platform`;
  writeWebhookItem(id, { status: 'inactive', disabled_reason: reason, failing_since: failingSince, last_error: lastError });
  const seeded = (await apiGet(`webhooks/${id}`)).body;
  assert.equal(seeded.status, 'inactive');
  assert.equal(Date.parse(seeded.failing_since), since.getTime(), 'the API shows failing_since');
  assert.equal(seeded.last_error, lastError);

  // The list marks it.
  await page.locator('#nav').getByRole('link', { name: 'Webhooks' }).click();
  const row = page.locator('#webhook-list tr', { hasText: url });
  await row.waitFor();
  assert.match(await row.locator('td[data-label="Status"]').textContent(), /inactive\s+failing/);

  await row.getByRole('link', { name: url }).click();
  await page.getByRole('heading', { name: url }).waitFor();
  const banner = page.locator('#failing-banner');
  await banner.waitFor();
  assert.equal(await banner.getAttribute('role'), 'alert');
  const local = await page.evaluate((t) => new Date(t).toLocaleString(), failingSince);
  assert.equal(await page.locator('#failing-title').textContent(), `Failing since ${local}`);
  assert.equal(await page.locator('#failing-error').textContent(), `Last error: ${lastError}`);
  assert.equal(await page.locator('#disabled-reason').textContent(), `Disabled: ${reason}`);
  assert.equal(await page.locator('#failing-banner img').count(), 0, 'the error is shown as text');
  assert.equal(await banner.getByRole('button').count(), 1, 'one button');
  assert.equal(await page.locator('#status-text').textContent(), 'Inactive');
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling with the banner (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1200, height: 900 });

  // One click: PATCH status active, then the recovery since the streak began.
  const calls = [];
  const watch = (r) => {
    if (r.url().startsWith(`${API}/webhooks/${id}`) && r.method() !== 'GET') calls.push([r.method(), r.url().slice(API.length + 1), r.postDataJSON()]);
  };
  page.on('request', watch);
  const delivered = received.length;
  await page.getByRole('button', { name: 'Re-enable and resend failed deliveries' }).click();
  await page.locator('#failing-recover-done', { hasText: 'Queued 1 failed deliveries.' }).waitFor();
  page.off('request', watch);
  assert.deepEqual(calls.map(([method, path]) => [method, path]), [['PATCH', `webhooks/${id}`], ['POST', `webhooks/${id}/recover`]]);
  assert.deepEqual(calls[0][2], { status: 'active' });
  assert.deepEqual(Object.keys(calls[1][2]), ['since'], 'a recovery, not a dry run');
  assert.equal(Date.parse(calls[1][2].since), since.getTime(), 'since the streak began');
  await until('the resent event', () => received.slice(delivered).some((r) => r.headers['webhook-id'] === failed));
  const now = (await apiGet(`webhooks/${id}`)).body;
  assert.equal(now.status, 'active');
  assert.equal(now.disabled_reason, undefined, 'activating clears the reason');
  const recovery = (await apiGet(`webhooks/${id}/recovery`)).body;
  assert.equal(Date.parse(recovery.since), since.getTime());
  // The page read the webhook again.
  await page.locator('#status-text', { hasText: /^Active$/ }).waitFor();
  assert.equal(await page.locator('#disabled-reason').count(), 0);
  assert.ok(await page.getByRole('switch').isChecked());
  // The resend succeeded: the streak is over, and the banner goes.
  await until('the streak to end', async () => (await apiGet(`webhooks/${id}`)).body.failing_since === undefined);
  await page.reload();
  await page.getByRole('heading', { name: url }).waitFor();
  await page.locator('#delivery-log').waitFor();
  assert.equal(await page.locator('#failing-banner').count(), 0);

  // Turned off with no streak on record: the recovery starts at the time the reason names.
  const earlier = new Date(Date.now() - 2 * 3600 * 1000);
  earlier.setMilliseconds(0);
  writeWebhookItem(id, {
    status: 'inactive',
    disabled_reason: `every attempt has failed since ${earlier.toISOString().replace('.000Z', 'Z')}; turned off by the platform`,
  }, ['failing_since', 'last_error']);
  await page.reload();
  await page.locator('#failing-title', { hasText: /^Turned off by the platform$/ }).waitFor();
  assert.equal(await page.locator('#failing-error').count(), 0);
  const recover = await requestOf('POST', `webhooks/${id}/recover`,
    () => page.getByRole('button', { name: 'Re-enable and resend failed deliveries' }).click());
  assert.equal(Date.parse(recover.since), earlier.getTime());
  await page.locator('#failing-recover-done', { hasText: 'Queued 0 failed deliveries.' }).waitFor();
  await page.locator('#status-text', { hasText: /^Active$/ }).waitFor();
  await until('the banner to go', async () => (await page.locator('#failing-banner').count()) === 0, 5);
  assert.equal((await apiGet(`webhooks/${id}`)).body.status, 'active');
  assert.deepEqual(dialogs, [], 'no script ran');
  assert.equal((await apiCall('DELETE', `webhooks/${id}`)).status, 204);
});

test('Settings: retention and response bodies are saved, and still there after a reload', async () => {
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'Settings', level: 2 }).waitFor();
  const hours = page.getByLabel('Payload retention (hours)');
  const bodies = page.getByLabel('Keep receivers’ response bodies');
  assert.equal(await hours.inputValue(), '168', 'the default');
  assert.ok(await bodies.isChecked(), 'kept by default');
  await page.getByText('0 = never stored; deliveries still carry the data').waitFor();

  await hours.fill('24');
  await bodies.uncheck();
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.locator('#settings-saved', { hasText: 'Saved: payload retention 24 hours; receivers’ response bodies not kept.' }).waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'settings.png'), fullPage: true });

  await page.reload();
  await page.getByRole('heading', { name: 'Settings', level: 2 }).waitFor();
  assert.equal(await hours.inputValue(), '24');
  assert.equal(await bodies.isChecked(), false);
  assert.deepEqual((await apiGet('settings')).body, { payload_retention_hours: 24, keep_response_bodies: false });
});

test('Settings: a retention out of range is refused, the API\'s message beside the field', async () => {
  const hours = page.getByLabel('Payload retention (hours)');
  // The form does not validate in the browser (max=168 blocks nothing): the API judges.
  await hours.fill('169');
  await page.getByRole('button', { name: 'Save settings' }).click();
  const error = page.locator('#payload_retention_hours-error');
  await error.filter({ hasText: 'payload_retention_hours' }).waitFor();
  assert.match(await error.textContent(), /from 0 to 168 \(got 169\)/);
  assert.equal(await hours.getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('#settings-saved').textContent(), '');
  assert.equal((await apiGet('settings')).body.payload_retention_hours, 24, 'nothing changed');
});

test('Settings: a read key sees them, and its save is refused with the API\'s message', async () => {
  const made = await apiCall('POST', 'api-keys', { name: 'settings-reader', scope: 'read' });
  assert.equal(made.status, 201);
  const reader = await made.json();
  // A tab of its own: the key lives in the tab's sessionStorage.
  const tab = await context.newPage();
  try {
    await tab.goto(`${API}/dashboard#/settings`);
    await tab.getByLabel('API key').fill(reader.key);
    await tab.keyboard.press('Enter');
    await tab.getByRole('heading', { name: 'Settings', level: 2 }).waitFor();
    assert.equal(await tab.getByLabel('Payload retention (hours)').inputValue(), '24');
    await tab.getByLabel('Payload retention (hours)').fill('0');
    await tab.getByRole('button', { name: 'Save settings' }).click();
    await tab.locator('#_form-error', { hasText: 'read scope' }).waitFor();
    await tab.locator('#status.error', { hasText: 'can read the settings but not change them' }).waitFor();
  } finally {
    await tab.close();
  }
  assert.equal((await apiGet('settings')).body.payload_retention_hours, 24, 'nothing changed');
  assert.equal((await apiCall('DELETE', `api-keys/${reader.id}`)).status, 200);
});

/** The Activity page's rows as shown: each entry's id (data-id) and the text of each cell. */
function activityRows() {
  return page.locator('#activity-log tbody tr').evaluateAll((rows) => rows.map((r) => ({
    id: r.dataset.id,
    action: r.querySelector('td[data-label="Action"]').textContent,
    who: r.querySelector('td[data-label="Who"]').textContent,
    target: r.querySelector('td[data-label="Target"]').textContent,
    changes: [...r.querySelectorAll('td[data-label="Changes"] li')].map((li) => li.textContent),
  })));
}

/** Every entry of the audit log through the API, newest first (`query`: more parameters, each after `&`). */
async function auditLog(query = '') {
  const all = [];
  let cursor;
  do {
    const r = await apiGet(`audit-log?limit=100${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    all.push(...r.body.data);
    cursor = r.body.next_cursor;
  } while (cursor);
  return all;
}

/** The same lines, in any order (the API's changes are an object: its keys' order is not part of it). */
function sameLines(actual, expected) {
  assert.deepEqual([...actual].sort(), [...expected].sort());
}

// The actions, in shared::audit::Action::ALL's order: the filter offers each.
const AUDIT_ACTIONS = ['webhook.created', 'webhook.updated', 'webhook.deleted', 'webhook.token_rotated',
  'webhook.signing_secret_rotated', 'webhook.disabled', 'api_key.created', 'api_key.revoked', 'api_key.rotated',
  'settings.updated', 'event.payload_deleted', 'event.redelivered', 'recovery.started', 'tenant.purged'];

test('Activity: the changes just made, newest first, with who made them and what changed, markup as text', async () => {
  // Through the API with the test's key: a webhook made, its URL and token changed, the settings changed.
  const made = await apiCall('POST', 'webhooks', { url: 'https://a.example.com/activity', events: ['async.completed'] });
  assert.equal(made.status, 201);
  const { id } = await made.json();
  state.activity = { webhook: id };
  const token = 'activity-token-0123456789abcdef';
  assert.equal((await apiCall('PATCH', `webhooks/${id}`, { url: 'https://b.example.net/activity', token })).status, 200);
  const retention = (await apiGet('settings')).body.payload_retention_hours;
  const hours = retention === 48 ? 72 : 48;
  assert.equal((await apiCall('PATCH', 'settings', { payload_retention_hours: hours })).status, 200);
  // Through the page: a read key named with markup (a customer's text the entry keeps).
  await page.getByRole('link', { name: 'API keys' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await page.getByLabel('Name').fill(XSS);
  await page.getByLabel('Scope').selectOption('read');
  await page.getByRole('button', { name: 'Create API key' }).click();
  await page.getByRole('heading', { name: 'API key created' }).waitFor();
  const key = await page.locator('#created-api-key').textContent();
  state.activity.key = (await apiGet('api-keys')).body.data.find((k) => k.name === XSS).id;

  await page.locator('#nav').getByRole('link', { name: 'Activity' }).click();
  await page.getByRole('heading', { name: 'Activity', level: 2 }).waitFor();
  await page.locator('#activity-log tbody tr').first().waitFor();
  assert.match(await page.locator('#activity-body').textContent(), /^TimeActionWhoTargetChanges/, 'nothing above the table');
  const rows = await activityRows();
  const log = (await apiGet('audit-log?limit=20')).body;
  assert.deepEqual(rows.map((r) => r.id), log.data.map((e) => e.id), 'the API\'s first page, in its order');
  assert.deepEqual(rows.slice(0, 4).map((r) => r.action),
    ['api_key.created', 'settings.updated', 'webhook.updated', 'webhook.created'], 'newest first');
  const [newKey, settings, updated, created] = rows;
  // Who: the key the change was made with, by its first characters (and its id), never in full.
  for (const row of [newKey, settings, updated, created]) {
    assert.ok(row.who.startsWith(`${KEY.slice(0, 8)}…key_`), row.who);
  }
  sameLines(newKey.changes, [`name: ${XSS}`, `prefix: ${key.slice(0, 8)}`, 'scope: read']);
  assert.equal(newKey.target, `api key${state.activity.key}`);
  // The fields changed come first.
  assert.deepEqual(settings.changes, ['fields: payload_retention_hours', `payload_retention_hours: ${retention} → ${hours}`]);
  assert.deepEqual(updated.changes, ['fields: url, token', 'url: a.example.com → b.example.net']);
  sameLines(created.changes, ['events: async.completed', 'host: a.example.com', 'status: active']);
  assert.equal(created.target, `webhook${id}`);

  // The key's name is text: no element made of it, no script run.
  const name = page.locator('#activity-log tbody tr').first().locator('td[data-label="Changes"] li').first();
  assert.equal(await name.textContent(), `name: ${XSS}`);
  assert.equal(await name.evaluate((li) => li.children.length), 0);
  assert.equal(await page.locator('#activity-log img').count(), 0, 'no element was made from the name');
  assert.deepEqual(dialogs, [], 'no script ran');
  // Nor any secret: the new key past its first characters, the token set.
  const html = await page.content();
  assert.ok(!html.includes(key.slice(8)), 'the new key is not shown');
  assert.ok(!html.includes(KEY.slice(8)), 'nor the page\'s own');
  assert.ok(!html.includes(token), 'nor the webhook\'s token');
  await page.screenshot({ path: join(SCREENSHOTS, 'activity.png'), fullPage: true });

  // A webhook that still exists links to its page ...
  const links = page.locator(`#activity-log a[href="#/webhooks/${id}"]`);
  assert.equal(await links.count(), 2, 'created and updated');
  await links.first().click();
  await page.getByRole('heading', { name: 'https://b.example.net/activity' }).waitFor();
  // ... and once deleted, its entries are listed without a link.
  assert.equal((await apiCall('DELETE', `webhooks/${id}`)).status, 204);
  await page.locator('#nav').getByRole('link', { name: 'Activity' }).click();
  await page.getByRole('heading', { name: 'Activity', level: 2 }).waitFor();
  await page.locator('#activity-log tbody tr').first().waitFor();
  const [deleted] = await activityRows();
  assert.equal(deleted.action, 'webhook.deleted');
  assert.deepEqual(deleted.changes, ['host: b.example.net']);
  assert.equal(deleted.target, `webhook${id}`);
  assert.equal(await links.count(), 0, 'no link to a deleted webhook');
  assert.equal(await page.locator('#activity-log tbody tr').filter({ hasText: id }).count(), 3);
});

test('Activity: the action filter narrows the list, and "Load more" pages on to the oldest entry', async () => {
  const filter = page.getByLabel('Filter by action');
  assert.equal(await filter.inputValue(), '', 'all actions by default');
  assert.deepEqual(await filter.locator('option').evaluateAll((os) => os.map((o) => o.value)), ['', ...AUDIT_ACTIONS]);

  const wanted = await auditLog('&action=settings.updated');
  assert.ok(wanted.length >= 2, 'the Settings tests\' save and this file\'s');
  await filter.selectOption('settings.updated');
  await until('the filtered list', async () => {
    const rows = await activityRows();
    return rows.length === wanted.length && rows.every((r) => r.action === 'settings.updated');
  }, 10);
  assert.deepEqual((await activityRows()).map((r) => r.id), wanted.map((e) => e.id));

  const revoked = await auditLog('&action=api_key.revoked');
  assert.ok(revoked.length >= 3, 'the API keys tests\' revocations');
  await filter.selectOption('api_key.revoked');
  await until('the revocations', async () => {
    const rows = await activityRows();
    return rows.length === revoked.length && rows.every((r) => r.action === 'api_key.revoked');
  }, 10);
  assert.deepEqual((await activityRows()).map((r) => r.id), revoked.map((e) => e.id));

  // A filtered page may come back empty with a next_cursor (the API reads a
  // bounded stretch of the log per call): the page reads on by itself. The
  // API's first answer is replaced here with such a page, ending where the
  // newest webhook.created ends.
  const made = await auditLog('&action=webhook.created');
  assert.ok(made.length >= 2);
  const cursor = (await apiGet('audit-log?limit=1&action=webhook.created')).body.next_cursor;
  const empty = (url) => url.pathname === '/audit-log' && url.search === '?limit=20&action=webhook.created';
  await page.route(empty, (r) => r.fulfill({ json: { data: [], next_cursor: cursor } }));
  try {
    await filter.selectOption('webhook.created');
    await until('the entries past the empty page', async () => {
      const rows = await activityRows();
      return rows.length === made.length - 1 && rows.every((r) => r.action === 'webhook.created');
    }, 10);
  } finally {
    await page.unroute(empty);
  }
  assert.deepEqual((await activityRows()).map((r) => r.id), made.slice(1).map((e) => e.id));
  assert.equal(await page.locator('#activity-none').count(), 0);

  assert.deepEqual(await auditLog('&action=api_key.rotated'), [], 'nothing rotated a key');
  await filter.selectOption('api_key.rotated');
  await page.getByText('No activity matches this filter.').waitFor();
  assert.equal(await page.locator('#activity-log').count(), 0);

  // All of it, 20 at a time.
  const all = await auditLog();
  assert.ok(all.length > 20, `enough entries for two pages (${all.length})`);
  await filter.selectOption('');
  await until('the first page', async () => (await activityRows()).length === 20, 10);
  assert.equal(await page.locator('#activity-end').count(), 0);
  const more = page.getByRole('button', { name: 'Load more' });
  let pages = 1;
  while (await page.locator('#activity-end').count() === 0) {
    assert.ok(pages <= Math.ceil(all.length / 20), 'no more pages than entries');
    const before = (await activityRows()).length;
    await more.click();
    pages += 1;
    await until(`page ${pages}`, async () => (await activityRows()).length > before
      || (await page.locator('#activity-end').count()) > 0, 10);
    assert.ok((await activityRows()).length - before <= 20, '20 at a time');
  }
  assert.equal(await page.locator('#activity-end').textContent(), 'No older entries.');
  assert.equal(await more.count(), 0, 'nothing more to load');
  const rows = await activityRows();
  assert.deepEqual(rows.map((r) => r.id), all.map((e) => e.id), 'every entry once, newest first');
  // The oldest: the key the local stack made for the tests, by the operator.
  const oldest = rows[rows.length - 1];
  assert.equal(oldest.action, 'api_key.created');
  assert.equal(oldest.who, 'operator');
  assert.ok(oldest.changes.includes('name: local'), oldest.changes.join('; '));
  assert.equal(await page.locator('#activity-log img').count(), 0);
  assert.deepEqual(dialogs, [], 'no script ran');

  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling on the Activity page (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1200, height: 900 });
  assert.equal((await apiCall('DELETE', `api-keys/${state.activity.key}`)).status, 200);
});

test('signing out forgets the key', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.deepEqual(dialogs, []);
});
