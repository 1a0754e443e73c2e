// The webhooks dashboard: plain JavaScript, no dependencies, served by the API.
// Every value that came from a user or a receiver is inserted as text
// (textContent, never innerHTML). The API key lives in sessionStorage only.
'use strict';

(() => {
  const KEY_ITEM = 'webhooks.apiKey';
  const main = document.getElementById('main');
  const statusLine = document.getElementById('status');
  const signOutButton = document.getElementById('sign-out');
  const nav = document.getElementById('nav');
  // The API's root: the page is served at <root>dashboard.
  const apiRoot = location.pathname.replace(/dashboard\/?$/, '');
  let eventTypes = [];
  // The platform's notices about the tenant's own webhooks, offered apart.
  let noticeTypes = [];

  // ---- small helpers -------------------------------------------------------

  /** Creates an element; string children become text nodes. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'className') node.className = value;
      else if (name === 'value') node.value = value;
      else if (name === 'checked') node.checked = Boolean(value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function say(text, isError) {
    statusLine.textContent = text || '';
    statusLine.className = isError ? 'error' : '';
  }

  function show(...nodes) {
    main.replaceChildren(...nodes);
    const heading = main.querySelector('h2');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
  }

  function apiKey() {
    return sessionStorage.getItem(KEY_ITEM);
  }

  /** 32 random bytes from the browser's CSPRNG, base64. */
  function generateToken() {
    const bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode(...bytes));
  }

  function formatTime(text) {
    const t = new Date(text);
    return Number.isNaN(t.getTime()) ? text : t.toLocaleString();
  }

  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && body.error ? body.error : {};
      super(detail.message || `The API answered ${status}.`);
      this.status = status;
      this.code = detail.code;
      this.field = detail.field;
    }
  }

  /** Calls the API with the stored key; throws ApiError on any non-2xx. */
  async function api(method, path, body, key) {
    const headers = { Authorization: `Bearer ${key || apiKey()}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(apiRoot + path, init);
    } catch (e) {
      throw new ApiError(0, { error: { message: 'The API could not be reached. Check your connection and try again.' } });
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && !key) {
        signOut('Your API key is no longer accepted. Sign in again.');
      }
      throw error;
    }
    return data;
  }

  /** An outcome as a badge: "delivered", or a failure by its name ("token error", "response too large"). */
  function outcomeBadge(outcome) {
    const kind = outcome === 'delivered' ? 'delivered' : 'failed';
    return el('span', { className: `badge ${kind}` }, outcome.replace(/_/g, ' '));
  }

  /** Copies text, falling back to selecting it when the clipboard is not allowed. */
  function copyButton(label, text, target) {
    return el('button', {
      type: 'button',
      onclick: async (e) => {
        try {
          await navigator.clipboard.writeText(text);
          say(`${label} copied.`);
        } catch (err) {
          const range = document.createRange();
          range.selectNodeContents(target);
          const selection = getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          say(`${label} selected: press Ctrl+C (or Cmd+C) to copy it.`);
        }
        e.target.focus();
      },
    }, `Copy ${label.toLowerCase()}`);
  }

  function secretRow(label, value, id) {
    const code = el('code', { id, className: 'mono' }, value);
    return el('div', { className: 'secret' }, el('strong', {}, `${label}:`), code, copyButton(label, value, code));
  }

  function onceNotice(...rows) {
    return el('div', { className: 'panel', role: 'region', 'aria-label': 'Secrets shown once' },
      el('p', {}, el('strong', {}, 'Copy these now: they will not be shown in full again.')),
      ...rows);
  }

  /**
   * Puts each API error beside the field it names, or in the form's error
   * box. A dotted field ("oauth2.client_id") goes beside its own input when
   * the form has one, else beside its parent's ("oauth2"); a header's place
   * ("headers[1].name") beside the list's.
   */
  function showFieldError(form, error) {
    for (const old of form.querySelectorAll('.field-error')) old.textContent = '';
    const names = [];
    for (let f = (error.field || '').replace(/\[.*$/, ''); f; f = f.includes('.') ? f.replace(/\.[^.]*$/, '') : '') names.push(f);
    const find = (selector) => names.map((f) => form.querySelector(selector(CSS.escape(f)))).find(Boolean);
    const slot = find((f) => `[data-error-for="${f}"]`);
    const target = slot || form.querySelector('[data-error-for="_form"]');
    target.textContent = error.message;
    const input = find((f) => `[name="${f}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }

  function clearFieldErrors(form) {
    for (const old of form.querySelectorAll('.field-error')) old.textContent = '';
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  }

  function errorSlot(name) {
    return el('p', { className: 'field-error', 'data-error-for': name, id: `${name}-error`, 'aria-live': 'polite' });
  }

  function eventCheckboxes(selected, idPrefix) {
    const box = (t) => el('label', { className: 'check' },
      el('input', { type: 'checkbox', name: 'events', value: t.name, id: `${idPrefix}-${t.name}`, checked: selected.includes(t.name) }),
      el('span', {}, el('span', { className: 'mono' }, t.name), el('small', {}, t.description)));
    return el('fieldset', { 'aria-describedby': 'events-error' },
      el('legend', {}, 'Events'),
      eventTypes.map(box),
      noticeTypes.length ? el('p', { className: 'hint' }, 'Notices about your webhooks (never sent to the webhook they are about):') : null,
      noticeTypes.map(box),
      errorSlot('events'));
  }

  function checkedEvents(form) {
    return [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value);
  }

  function urlField(value) {
    const note = el('p', { className: 'note-warn', id: 'url-http-note', hidden: true },
      'This URL uses http: deliveries and their Authorization token travel unencrypted. https is recommended.');
    const input = el('input', {
      type: 'url', id: 'url', name: 'url', value, required: true, autocomplete: 'off',
      'aria-describedby': 'url-error url-http-note', placeholder: 'https://hooks.example.com/ekyc',
    });
    const update = () => { note.hidden = !input.value.trim().toLowerCase().startsWith('http:'); };
    input.addEventListener('input', update);
    update();
    return el('div', { className: 'field' }, el('label', { for: 'url' }, 'URL'), input, note, errorSlot('url'));
  }

  function descriptionField(value) {
    return el('div', { className: 'field' },
      el('label', { for: 'description' }, 'Description (optional)'),
      el('input', { type: 'text', id: 'description', name: 'description', maxlength: 256, value: value || '', autocomplete: 'off', 'aria-describedby': 'description-error' }),
      errorSlot('description'));
  }

  function retryField(value) {
    return el('div', { className: 'field' },
      el('label', { for: 'retry-policy' }, 'Retries'),
      el('select', { id: 'retry-policy', name: 'retry_policy', 'aria-describedby': 'retry-policy-hint retry_policy-error' },
        el('option', { value: 'none', selected: value !== 'exponential' }, 'None: one attempt per event (the default)'),
        el('option', { value: 'exponential', selected: value === 'exponential' }, 'Exponential: retry failures for about 22 hours')),
      el('p', { className: 'hint', id: 'retry-policy-hint' }, 'With retries, a timeout, connection error, 5xx, 408 or 429 is tried again after about 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h and 12 h.'),
      errorSlot('retry_policy'));
  }

  // A webhook's `payload`, by wire name: the forms offer these and the header names the one chosen.
  const PAYLOAD_FORMS = {
    full: 'Full event',
    thin: 'Thin: reference only, the receiver fetches the data',
  };

  function payloadField(value) {
    return el('div', { className: 'field' },
      el('label', { for: 'payload-form' }, 'Payload'),
      el('select', { id: 'payload-form', name: 'payload', 'aria-describedby': 'payload-form-hint payload-error' },
        Object.entries(PAYLOAD_FORMS).map(([form, label]) => el('option', { value: form, selected: form === (value || 'full') }, label))),
      el('p', { className: 'hint', id: 'payload-form-hint' }, 'Thin deliveries carry the event’s id, type, time and subject, not its data: the receiver reads it with GET /events/{id} and a read-scope API key.'),
      errorSlot('payload'));
  }

  /** At most this many deliveries a second; empty = no cap. The API judges the range. */
  function throttleField(value) {
    return el('div', { className: 'field' },
      el('label', { for: 'throttle-rate' }, 'Throttle (deliveries per second)'),
      el('input', {
        type: 'number', id: 'throttle-rate', name: 'throttle_rate', min: 1, max: 10000, step: 1, inputmode: 'numeric',
        value: value === undefined || value === null ? '' : String(value), autocomplete: 'off',
        'aria-describedby': 'throttle-rate-hint throttle_rate-error',
      }),
      el('p', { className: 'hint', id: 'throttle-rate-hint' },
        'From 1 to 10000. Empty = no cap. Above the cap, deliveries wait their turn: none is dropped or failed for it.'),
      errorSlot('throttle_rate'));
  }

  /**
   * The throttle field's value: a number, null when empty, or undefined
   * (with the message shown beside the field) when it is not a whole number.
   */
  function throttleValue(form) {
    const input = form.querySelector('#throttle-rate');
    const text = input.value.trim();
    const rate = Number(text);
    if (input.validity.badInput || (text !== '' && !Number.isInteger(rate))) {
      showFieldError(form, { field: 'throttle_rate', message: 'Enter a whole number of deliveries per second, from 1 to 10000, or leave it empty for no cap.' });
      return undefined;
    }
    return text === '' ? null : rate;
  }

  // A webhook holds at most this many headers of its own (shared::custom_headers::MAX_HEADERS).
  const MAX_HEADERS = 10;

  /**
   * "Custom headers": a row per header (name, value, Secret, Remove) and
   * "Add header", up to MAX_HEADERS rows. `held` is the list the webhook
   * holds (as the API shows it): a secret's value was only ever shown
   * masked, so its input starts empty, and left empty the value held is
   * kept. A typed value lives in its input and in the request body only.
   * Returns the field's node, `read(form)` (see below), `fill(list)` to
   * show a list again, and `markError(error)`.
   */
  function headersField(held) {
    const rows = el('div', { id: 'header-rows' });
    const add = el('button', { type: 'button', id: 'add-header' }, 'Add header');
    // One entry per row, in order: its inputs and the held secret it keeps (if any).
    let entries = [];
    // The entries of the rows last read, in the order sent: the API names a header by its place.
    let sent = [];
    let made = 0;

    function renumber() {
      entries.forEach((entry, i) => {
        const n = i + 1;
        entry.nameLabel.textContent = `Header ${n} name`;
        entry.valueLabel.textContent = `Header ${n} value`;
        entry.secret.setAttribute('aria-label', `Header ${n} secret`);
        entry.remove.setAttribute('aria-label', `Remove header ${n}`);
      });
      add.disabled = entries.length >= MAX_HEADERS;
    }

    function addRow(h) {
      made += 1;
      const id = `header-${made}`;
      const kept = h && h.secret ? h : null;
      const name = el('input', {
        type: 'text', id: `${id}-name`, className: 'mono header-name', value: h ? h.name : '',
        autocomplete: 'off', spellcheck: 'false', placeholder: 'Name, e.g. X-Gateway-Key', 'aria-describedby': 'headers-error',
      });
      const value = el('input', {
        type: 'text', id: `${id}-value`, className: 'mono header-value', value: h && !h.secret ? h.value : '',
        autocomplete: 'off', spellcheck: 'false', placeholder: kept ? 'unchanged (secret)' : 'Value',
        'aria-describedby': 'headers-error',
      });
      const secret = el('input', { type: 'checkbox', id: `${id}-secret`, checked: Boolean(h && h.secret) });
      const entry = {
        name, value, secret, kept,
        nameLabel: el('label', { for: name.id, className: 'visually-hidden' }),
        valueLabel: el('label', { for: value.id, className: 'visually-hidden' }),
        remove: el('button', { type: 'button', className: 'header-remove' }, 'Remove'),
      };
      entry.row = el('div', { className: 'header-row' },
        entry.nameLabel, name, entry.valueLabel, value,
        el('label', { className: 'check header-secret', for: secret.id }, secret, el('span', {}, 'Secret')),
        entry.remove);
      entry.remove.addEventListener('click', () => {
        const at = entries.indexOf(entry);
        entries.splice(at, 1);
        entry.row.remove();
        renumber();
        const next = entries[at] || entries[at - 1];
        (next ? next.name : add).focus();
      });
      entries.push(entry);
      rows.append(entry.row);
      renumber();
      return entry;
    }

    function fill(list) {
      entries = [];
      rows.replaceChildren();
      (list || []).slice(0, MAX_HEADERS).forEach(addRow);
      renumber();
    }

    add.addEventListener('click', () => {
      if (entries.length >= MAX_HEADERS) return;
      addRow(null).name.focus();
    });
    fill(held);

    /** The rows not left empty (no name and no value), in order, with what each sends. */
    function filled() {
      return entries
        .map((entry) => ({ entry, name: entry.name.value.trim(), value: entry.value.value }))
        .filter((r) => r.name !== '' || r.value !== '');
    }

    /**
     * The list to send: `{name, value, secret}` per row; a held secret whose
     * value is left empty (same name, still secret) as `{name, secret: true}`,
     * so that the API keeps it. Undefined (with the message beside the
     * field) when a held secret's value would be kept under another name or
     * shown in the clear. The API judges everything else.
     */
    function read(form) {
      const list = [];
      sent = [];
      for (const { entry, name, value } of filled()) {
        const keep = entry.kept && value === '';
        if (keep && !entry.secret.checked) {
          markRow(form, entry.value, `Type the value of ${name || 'this header'} again to make it visible: its secret value is never shown.`);
          return undefined;
        }
        if (keep && name.toLowerCase() !== entry.kept.name.toLowerCase()) {
          markRow(form, entry.value, `Type the value of ${name} again: a secret value is kept only under its own name (${entry.kept.name}).`);
          return undefined;
        }
        list.push(keep ? { name, secret: true } : { name, value, secret: entry.secret.checked });
        sent.push(entry);
      }
      return list;
    }

    function markRow(form, input, message) {
      showFieldError(form, { field: 'headers', message });
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }

    /** After showFieldError: the input of the header the API names ("headers[1].name: …"), marked and focused. */
    function markError(error) {
      const match = /headers\[(\d+)\]\.(name|value)/.exec(`${error.field || ''} ${error.message || ''}`);
      const entry = match && sent[Number(match[1])];
      if (!entry) return;
      const input = match[2] === 'name' ? entry.name : entry.value;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }

    const node = el('fieldset', { className: 'headers', id: 'headers-field', 'aria-describedby': 'headers-hint headers-error' },
      el('legend', {}, 'Custom headers'),
      el('p', { className: 'hint', id: 'headers-hint' },
        `Sent with every delivery and test event, after the platform’s own (e.g. an API gateway’s key or a routing header); up to ${MAX_HEADERS}. `
        + 'They cannot replace Authorization, Host, User-Agent, Expect, Content-*, Webhook-* or hop-by-hop headers. '
        + 'Values are visible ASCII. A secret value is masked once saved and never shown again; left empty, it is kept.'),
      rows,
      add,
      errorSlot('headers'));
    return { node, read, fill, markError };
  }

  /**
   * Whether `list` (as headersField's read gives it) differs from `held`
   * (as the API shows it): names, order, secret flags, non-secret values,
   * or a secret's value typed again.
   */
  function headersChanged(list, held) {
    const now = held || [];
    if (list.length !== now.length) return true;
    return list.some((h, i) => h.name !== now[i].name
      || h.secret !== now[i].secret
      || (h.value !== undefined && (now[i].secret || h.value !== now[i].value)));
  }

  // How the platform authenticates to an OAuth2 token endpoint (RFC 6749 §2.3.1), by wire name.
  const AUTH_METHODS = {
    client_secret_basic: 'HTTP Basic (client_secret_basic, the default)',
    client_secret_post: 'In the request body (client_secret_post)',
  };

  /** The host (and port) of a URL, or the URL itself when it cannot be read. */
  function hostOf(url) {
    try {
      return new URL(url).host;
    } catch (e) {
      return url;
    }
  }

  /** A day as "Nov 9, 2126", in the browser's language and zone. */
  function formatDay(text) {
    const t = new Date(text);
    return Number.isNaN(t.getTime()) ? text : t.toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' });
  }

  /** The Authorization deliveries carry, as the webhook's page names it. */
  function authSummary(oauth) {
    return oauth ? `OAuth2 client credentials (client ${oauth.client_id} at ${hostOf(oauth.token_url)})` : 'Basic token';
  }

  /** A client identity as the webhook's page names it: subject, expiry, the start of its fingerprint. */
  function identitySummary(identity) {
    if (!identity) return 'none';
    const expired = new Date(identity.not_after).getTime() <= Date.now();
    return `${identity.subject}, ${expired ? 'expired' : 'expires'} ${formatDay(identity.not_after)}, `
      + `SHA-256 ${identity.fingerprint.slice(0, 16)}…`
      + (identity.ca_fingerprint ? `; CA SHA-256 ${identity.ca_fingerprint.slice(0, 16)}…` : '');
  }

  /** A PEM text area, with its label, hint and error slot; `name` is the API's field. */
  function pemField(id, name, label, hint, placeholder) {
    const area = el('textarea', {
      id, name, rows: 5, className: 'mono pem', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off',
      placeholder, 'aria-describedby': `${id}-hint ${name}-error`,
    });
    return {
      area,
      node: el('div', { className: 'field' },
        el('label', { for: id }, label), area,
        el('p', { className: 'hint', id: `${id}-hint` }, hint),
        errorSlot(name)),
    };
  }

  /**
   * "Receiver authentication": the Authorization deliveries carry (the
   * Basic token, or an access token fetched with OAuth2 client
   * credentials) and an optional client certificate for mutual TLS. `w` is
   * the webhook (Settings), or null (New Webhook). Nothing secret is ever
   * read back: the client secret's input starts empty and, left empty, the
   * secret held is kept; the private key's starts empty, and an identity
   * held is sent again only when replaced (or null, removed). Typed
   * secrets live in their inputs and the request body only. Returns the
   * node, `read()` (the fields to send) and `fill(w)`, which shows a
   * webhook again with its secret inputs emptied.
   */
  function authField(w) {
    const node = el('fieldset', { className: 'auth', id: 'auth-field', 'aria-describedby': 'auth-hint' });
    let read = () => ({});
    let clear = () => {};

    function fill(webhook) {
      clear();
      const oauth = (webhook && webhook.oauth2) || null;
      const identity = (webhook && webhook.client_tls) || null;

      // The Authorization header: Basic token or OAuth2 client credentials.
      const basic = el('input', { type: 'radio', name: 'auth_kind', id: 'auth-basic', value: 'basic', checked: !oauth });
      const useOauth = el('input', { type: 'radio', name: 'auth_kind', id: 'auth-oauth2', value: 'oauth2', checked: Boolean(oauth) });
      const tokenUrl = el('input', {
        type: 'url', id: 'oauth2-token-url', name: 'oauth2.token_url', value: oauth ? oauth.token_url : '',
        autocomplete: 'off', spellcheck: 'false', placeholder: 'https://auth.example.com/oauth/token',
        'aria-describedby': 'oauth2-token-url-hint oauth2.token_url-error',
      });
      const clientId = el('input', {
        type: 'text', id: 'oauth2-client-id', name: 'oauth2.client_id', className: 'mono', value: oauth ? oauth.client_id : '',
        autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'oauth2.client_id-error',
      });
      const secret = el('input', {
        type: 'password', id: 'oauth2-client-secret', name: 'oauth2.client_secret', className: 'mono',
        autocomplete: 'off', spellcheck: 'false',
        placeholder: oauth ? `kept unless typed again (${oauth.client_secret})` : '',
        'aria-describedby': 'oauth2-client-secret-hint oauth2.client_secret-error',
      });
      const scope = el('input', {
        type: 'text', id: 'oauth2-scope', name: 'oauth2.scope', className: 'mono', value: oauth && oauth.scope ? oauth.scope : '',
        autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. webhooks.write', 'aria-describedby': 'oauth2.scope-error',
      });
      const method = el('select', { id: 'oauth2-auth-method', name: 'oauth2.auth_method', 'aria-describedby': 'oauth2.auth_method-error' },
        Object.entries(AUTH_METHODS).map(([value, label]) => el('option', {
          value, selected: value === ((oauth && oauth.auth_method) || 'client_secret_basic'),
        }, label)));
      const oauthFields = el('div', { className: 'auth-part', id: 'oauth2-fields', hidden: !oauth },
        el('div', { className: 'field' },
          el('label', { for: 'oauth2-token-url' }, 'Token endpoint'), tokenUrl,
          el('p', { className: 'hint', id: 'oauth2-token-url-hint' }, 'https only: the client secret travels to it.'),
          errorSlot('oauth2.token_url')),
        el('div', { className: 'field' }, el('label', { for: 'oauth2-client-id' }, 'Client ID'), clientId, errorSlot('oauth2.client_id')),
        el('div', { className: 'field' },
          el('label', { for: 'oauth2-client-secret' }, 'Client secret'), secret,
          el('p', { className: 'hint', id: 'oauth2-client-secret-hint' }, oauth
            ? 'Shown masked once saved, never in full. Left empty, the secret held is kept (as long as the token endpoint stays the same).'
            : 'Shown masked once saved, never in full.'),
          errorSlot('oauth2.client_secret')),
        el('div', { className: 'field' }, el('label', { for: 'oauth2-scope' }, 'Scope (optional)'), scope, errorSlot('oauth2.scope')),
        el('div', { className: 'field' },
          el('label', { for: 'oauth2-auth-method' }, 'Client authentication method'), method, errorSlot('oauth2.auth_method')),
        errorSlot('oauth2'));
      const choose = () => { oauthFields.hidden = !useOauth.checked; };
      basic.addEventListener('change', choose);
      useOauth.addEventListener('change', choose);

      // The client certificate: present one (none held), or keep, replace or remove the one held.
      const cert = pemField('client-tls-certificate', 'client_tls.certificate', 'Certificate chain (PEM, leaf first)',
        'The client certificate, then its intermediates. RSA (2048 bits or more) or ECDSA P-256/P-384.', '-----BEGIN CERTIFICATE-----');
      const key = pemField('client-tls-private-key', 'client_tls.private_key', 'Private key (PEM, unencrypted)',
        'Never shown again, here or through the API.', '-----BEGIN PRIVATE KEY-----');
      const ca = pemField('client-tls-ca', 'client_tls.ca', 'CA for this endpoint (PEM, optional)',
        'Trusted for this endpoint’s server certificate instead of the public roots. Empty: the public roots.', '-----BEGIN CERTIFICATE-----');
      const upload = el('div', { className: 'auth-part', id: 'client-tls-upload', hidden: true }, cert.node, key.node, ca.node);
      let mode;
      let choices;
      if (identity) {
        const radio = (value, label) => {
          const input = el('input', { type: 'radio', name: 'client_tls_mode', id: `client-tls-${value}`, value, checked: value === 'keep' });
          return el('label', { className: 'check', for: input.id }, input, el('span', {}, label));
        };
        choices = [
          el('dl', { className: 'identity-held', id: 'client-tls-held' },
            el('dt', {}, 'Subject'), el('dd', { className: 'mono' }, identity.subject),
            el('dt', {}, 'Expires'), el('dd', {}, formatTime(identity.not_after)),
            el('dt', {}, 'SHA-256'), el('dd', { className: 'mono' }, identity.fingerprint),
            identity.ca_fingerprint ? [el('dt', {}, 'CA SHA-256'), el('dd', { className: 'mono' }, identity.ca_fingerprint)] : null),
          el('div', { role: 'radiogroup', 'aria-label': 'The client certificate held' },
            radio('keep', 'Keep it'),
            radio('replace', 'Replace it with a new certificate and key (and CA, if one is to be trusted)'),
            radio('remove', 'Remove it: no client certificate')),
        ];
        mode = () => node.querySelector('input[name="client_tls_mode"]:checked').value;
      } else {
        const present = el('input', { type: 'checkbox', id: 'client-tls-present' });
        choices = [el('label', { className: 'check', for: present.id }, present, el('span', {}, 'Present a client certificate'))];
        mode = () => (present.checked ? 'replace' : 'none');
      }
      const removeNote = el('p', { className: 'note-warn', id: 'client-tls-remove-note', hidden: true },
        'The client certificate will be removed when you save.');
      const identityPart = el('fieldset', { className: 'identity', id: 'client-tls-field', 'aria-describedby': 'client-tls-hint client_tls-error' },
        el('legend', {}, 'Client certificate (mutual TLS)'),
        el('p', { className: 'hint', id: 'client-tls-hint' },
          'Presented in the TLS handshake, for a receiver that asks for one; needs an https URL. '
          + (identity ? 'The key held is never shown; replacing sends a certificate, its key and the CA together.' : 'Optional.')),
        choices, removeNote, upload, errorSlot('client_tls'));
      identityPart.addEventListener('change', () => {
        upload.hidden = mode() !== 'replace';
        removeNote.hidden = mode() !== 'remove';
      });

      node.replaceChildren(
        el('legend', {}, 'Receiver authentication'),
        el('p', { className: 'hint', id: 'auth-hint' },
          'How deliveries and test events prove themselves to your receiver: the Authorization header they carry, and a client certificate if it asks for one.'),
        el('div', { role: 'radiogroup', 'aria-label': 'Authorization header', id: 'auth-kind' },
          el('label', { className: 'check', for: 'auth-basic' }, basic,
            el('span', {}, 'Basic token', el('small', {}, 'Authorization: Basic <the webhook’s token>'))),
          el('label', { className: 'check', for: 'auth-oauth2' }, useOauth,
            el('span', {}, 'OAuth2 client credentials',
              el('small', {}, 'Authorization: Bearer <access token>, fetched from your token endpoint and reused until it nears expiry')))),
        oauthFields,
        identityPart);

      /**
       * The fields to send: `oauth2` when it differs from what is held (null:
       * back to the Basic token; without client_secret when none was typed,
       * so that the API keeps it), `client_tls` when presented, replaced or
       * removed (null). The API judges the values.
       */
      read = () => {
        const out = {};
        if (!useOauth.checked) {
          if (oauth) out.oauth2 = null;
        } else {
          const o = { token_url: tokenUrl.value.trim(), client_id: clientId.value, auth_method: method.value };
          if (scope.value.trim()) o.scope = scope.value.trim();
          if (secret.value !== '') o.client_secret = secret.value;
          const same = oauth && o.client_secret === undefined && o.token_url === oauth.token_url
            && o.client_id === oauth.client_id && (o.scope || null) === (oauth.scope || null)
            && o.auth_method === oauth.auth_method;
          if (!same) out.oauth2 = o;
        }
        const m = mode();
        if (m === 'replace') {
          out.client_tls = { certificate: cert.area.value, private_key: key.area.value };
          if (ca.area.value.trim()) out.client_tls.ca = ca.area.value;
        } else if (m === 'remove') {
          out.client_tls = null;
        }
        return out;
      };
      clear = () => {
        secret.value = '';
        key.area.value = '';
      };
    }

    fill(w);
    return { node, read: () => read(), fill, clear: () => clear() };
  }

  async function loadEventTypes(key) {
    const list = await api('GET', 'event-types', undefined, key);
    eventTypes = list.data;
    noticeTypes = list.notices || [];
  }

  // ---- sign in / out -------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(KEY_ITEM);
    signOutButton.hidden = true;
    nav.hidden = true;
    // Without a hashchange event, which would render the form again without the message.
    history.replaceState(null, '', '#/');
    renderSignIn(message);
  }

  function renderSignIn(message) {
    signOutButton.hidden = true;
    nav.hidden = true;
    const error = el('p', { className: 'field-error', id: 'api-key-error', role: 'alert' }, message || '');
    const input = el('input', { type: 'password', id: 'api-key', name: 'api_key', required: true, autocomplete: 'off', 'aria-describedby': 'api-key-hint api-key-error' });
    const form = el('form', {
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        const key = input.value.trim();
        if (!key) {
          error.textContent = 'Paste your API key first.';
          input.focus();
          return;
        }
        const button = form.querySelector('button');
        button.disabled = true;
        try {
          await loadEventTypes(key);
          sessionStorage.setItem(KEY_ITEM, key);
          say('Signed in.');
          route();
        } catch (err) {
          error.textContent = err.status === 401
            ? 'That API key was not accepted. Check that you pasted all of it, and that it has not been revoked.'
            : err.message;
          input.focus();
        } finally {
          button.disabled = false;
        }
      },
    },
    el('h2', {}, 'Sign in'),
    el('div', { className: 'field' },
      el('label', { for: 'api-key' }, 'API key'),
      input,
      el('p', { className: 'hint', id: 'api-key-hint' }, 'Kept in this browser tab only, and forgotten when you sign out or close the tab.'),
      error),
    el('button', { type: 'submit', className: 'primary' }, 'Sign in'));
    show(form);
    input.focus();
  }

  // ---- the health chart ----------------------------------------------------

  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** Creates an SVG element (attributes only: no inline style, for the CSP). */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function bucketLabel(stats, start) {
    const t = new Date(start);
    return stats.bucket === 'hour'
      ? t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : t.toLocaleDateString([], { month: 'short', day: 'numeric' });
  }

  /** Success rate as text: "98.5 % delivered" or "no deliveries". */
  function successRate(stats) {
    const total = stats.delivered + stats.failed;
    if (!total) return 'no deliveries';
    const rate = (100 * stats.delivered) / total;
    return `${rate.toFixed(rate === 100 || rate === 0 ? 0 : 1)} % delivered`;
  }

  /**
   * Delivered and failed attempts per bucket, stacked, and the p95 duration
   * as a line; drawn as inline SVG. Screen readers get the SVG's title and
   * summary, and a table with every bucket's numbers.
   */
  function healthChart(stats) {
    const width = 720;
    const height = 200;
    const pad = { left: 40, right: 48, top: 10, bottom: 24 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const n = stats.buckets.length;
    const maxCount = Math.max(1, ...stats.buckets.map((b) => b.delivered + b.failed));
    const maxP95 = Math.max(1, ...stats.buckets.map((b) => b.p95_ms || 0));
    const slot = plotW / n;
    const barW = Math.max(2, slot * 0.7);
    const y = (count) => pad.top + plotH - (plotH * count) / maxCount;
    const yMs = (ms) => pad.top + plotH - (plotH * ms) / maxP95;
    const bars = stats.buckets.map((b, i) => {
      const x = pad.left + i * slot + (slot - barW) / 2;
      const label = `${bucketLabel(stats, b.start)}: ${b.delivered} delivered, ${b.failed} failed`;
      return svg('g', { class: 'bucket', 'data-start': b.start, 'data-delivered': b.delivered, 'data-failed': b.failed },
        svg('title', {}, label),
        svg('rect', { class: 'delivered', x, y: y(b.delivered), width: barW, height: y(0) - y(b.delivered), fill: '#1a7f37' }),
        svg('rect', { class: 'failed', x, y: y(b.delivered + b.failed), width: barW, height: y(b.delivered) - y(b.delivered + b.failed), fill: '#b42318' }));
    });
    const points = stats.buckets
      .map((b, i) => (b.p95_ms === undefined ? null : `${(pad.left + (i + 0.5) * slot).toFixed(1)},${yMs(b.p95_ms).toFixed(1)}`))
      .filter(Boolean);
    const total = stats.delivered + stats.failed;
    const summary = `${total} attempts over the last ${stats.window}: ${stats.delivered} delivered, ${stats.failed} failed (${successRate(stats)}).`
      + (stats.complete ? '' : ` Only the newest ${stats.counted} attempts are counted, back to ${formatTime(stats.counted_since)}.`);
    const chart = svg('svg', {
      id: 'health-chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-labelledby': 'health-chart-title health-chart-desc', class: 'chart',
    },
    svg('title', { id: 'health-chart-title' }, `Deliveries per ${stats.bucket}, last ${stats.window}`),
    svg('desc', { id: 'health-chart-desc' }, summary),
    svg('line', { x1: pad.left, y1: y(0), x2: pad.left + plotW, y2: y(0), stroke: '#d0d7de' }),
    svg('text', { x: pad.left - 6, y: y(maxCount) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#57606a' }, String(maxCount)),
    svg('text', { x: pad.left - 6, y: y(0), 'text-anchor': 'end', 'font-size': 11, fill: '#57606a' }, '0'),
    svg('text', { x: pad.left + plotW + 6, y: yMs(maxP95) + 4, 'font-size': 11, fill: '#0b5cad' }, `${maxP95} ms`),
    svg('text', { x: pad.left, y: height - 6, 'font-size': 11, fill: '#57606a' }, bucketLabel(stats, stats.buckets[0].start)),
    svg('text', { x: pad.left + plotW, y: height - 6, 'text-anchor': 'end', 'font-size': 11, fill: '#57606a' }, bucketLabel(stats, stats.buckets[n - 1].start)),
    bars,
    points.length > 1
      ? svg('polyline', { class: 'p95', points: points.join(' '), fill: 'none', stroke: '#0b5cad', 'stroke-width': 2 })
      : null);
    const table = el('table', { className: 'visually-hidden', id: 'health-table' },
      el('caption', {}, `Deliveries per ${stats.bucket}`),
      el('thead', {}, el('tr', {}, ['Start', 'Delivered', 'Failed', 'p50', 'p95'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, stats.buckets.map((b) => el('tr', {},
        el('th', { scope: 'row' }, bucketLabel(stats, b.start)),
        el('td', {}, String(b.delivered)),
        el('td', {}, String(b.failed)),
        el('td', {}, b.p50_ms === undefined ? '—' : `${b.p50_ms} ms`),
        el('td', {}, b.p95_ms === undefined ? '—' : `${b.p95_ms} ms`)))));
    return el('div', {},
      el('p', { id: 'health-summary' }, summary),
      chart,
      el('p', { className: 'hint legend' },
        el('span', { className: 'key delivered' }, '■'), ' delivered  ',
        el('span', { className: 'key failed' }, '■'), ' failed  ',
        el('span', { className: 'key p95' }, '—'), ' p95 duration'),
      table);
  }

  // ---- the list ------------------------------------------------------------

  /** Short markers beside a webhook's status: failing, turned off by the platform, throttled. */
  function stateMarkers(w) {
    const markers = [];
    if (w.failing_since) markers.push(el('span', { className: 'badge failed marker' }, 'failing'));
    else if (w.status === 'inactive' && w.disabled_reason) markers.push(el('span', { className: 'badge failed marker' }, 'disabled by the platform'));
    if (w.throttled_since) markers.push(el('span', { className: 'badge throttled marker' }, 'throttled'));
    return markers.flatMap((m) => [' ', m]);
  }

  const listState = { cursors: [null], page: 0 };

  async function renderList() {
    const cursor = listState.cursors[listState.page];
    const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
    const list = await api('GET', `webhooks${query}`);
    const rows = list.data.map((w) => {
      const health = el('td', { 'data-label': 'Last 24 h', className: 'rate' }, 'loading…');
      api('GET', `webhooks/${encodeURIComponent(w.id)}/stats?window=24h`)
        .then((stats) => health.replaceChildren(successRate(stats)))
        .catch(() => health.replaceChildren('unavailable'));
      const last = el('td', { 'data-label': 'Last delivery' }, 'loading…');
      api('GET', `webhooks/${encodeURIComponent(w.id)}/deliveries?limit=1`).then((log) => {
        const d = log.data[0];
        last.replaceChildren(d
          ? el('span', {}, outcomeBadge(d.outcome), ' ', formatTime(d.attempted_at))
          : 'none yet');
      }).catch(() => last.replaceChildren('unavailable'));
      return el('tr', {},
        el('td', { className: 'url', 'data-label': 'URL' }, el('a', { href: `#/webhooks/${w.id}` }, w.url)),
        el('td', { 'data-label': 'Status' }, el('span', { className: `badge ${w.status}` }, w.status), stateMarkers(w)),
        el('td', { 'data-label': 'Events' }, w.events.join(', ')),
        health,
        last);
    });
    const pager = el('nav', { className: 'pager', 'aria-label': 'Pages' },
      el('button', { type: 'button', disabled: listState.page === 0, onclick: () => { listState.page -= 1; renderList().catch(fail); } }, 'Previous page'),
      el('button', { type: 'button', disabled: !list.next_cursor, onclick: () => {
        listState.cursors[listState.page + 1] = list.next_cursor;
        listState.page += 1;
        renderList().catch(fail);
      } }, 'Next page'));
    show(
      el('div', { className: 'row' }, el('h2', {}, 'Your webhooks'), el('a', { href: '#/new', className: 'button primary', id: 'new-webhook' }, 'New Webhook')),
      rows.length
        ? el('table', { className: 'responsive', id: 'webhook-list' },
          el('thead', {}, el('tr', {}, el('th', {}, 'URL'), el('th', {}, 'Status'), el('th', {}, 'Events'), el('th', {}, 'Last 24 h'), el('th', {}, 'Last delivery'))),
          el('tbody', {}, rows))
        : el('p', {}, 'No webhooks yet. Register one with “New Webhook”.'),
      pager);
  }

  // ---- new webhook ---------------------------------------------------------

  function renderNew() {
    const token = el('input', { type: 'text', id: 'token', name: 'token', className: 'mono', value: generateToken(), autocomplete: 'off', 'aria-describedby': 'token-hint token-error' });
    const headers = headersField([]);
    const auth = authField(null);
    const form = el('form', { novalidate: true, id: 'new-webhook-form' },
      el('h2', {}, 'New Webhook'),
      errorSlot('_form'),
      urlField(''),
      el('div', { className: 'field' },
        el('label', { for: 'token' }, 'Authorization token'),
        el('div', { className: 'row' }, token,
          el('button', { type: 'button', onclick: () => { token.value = generateToken(); token.focus(); } }, 'Generate another')),
        el('p', { className: 'hint', id: 'token-hint' }, 'Sent with every delivery as “Authorization: Basic <token>” (unless OAuth2 client credentials are chosen under “Receiver authentication”). Generated for you; you may change it (16 to 256 visible characters).'),
        errorSlot('token')),
      eventCheckboxes([], 'new'),
      descriptionField(''),
      retryField('none'),
      payloadField('full'),
      throttleField(null),
      headers.node,
      auth.node,
      el('div', { className: 'row' },
        el('button', { type: 'submit', className: 'primary' }, 'Submit'),
        el('a', { href: '#/', className: 'button' }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      const description = form.querySelector('#description').value;
      const body = {
        url: form.querySelector('#url').value.trim(),
        events: checkedEvents(form),
        token: token.value,
        retry_policy: form.querySelector('#retry-policy').value,
        payload: form.querySelector('#payload-form').value,
      };
      if (description) body.description = description;
      const throttle = throttleValue(form);
      if (throttle === undefined) {
        say('The webhook was not created: see the message beside the field.', true);
        return;
      }
      if (throttle !== null) body.throttle_rate = throttle;
      const list = headers.read(form);
      if (list === undefined) {
        say('The webhook was not created: see the message beside the field.', true);
        return;
      }
      // Sent only with at least one header (empty rows are left out).
      if (list.length) body.headers = list;
      // Sent only when chosen: OAuth2 client credentials, a client certificate.
      Object.assign(body, auth.read());
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const created = await api('POST', 'webhooks', body);
        auth.clear();
        renderCreated(created);
      } catch (err) {
        showFieldError(form, err);
        headers.markError(err);
        say('The webhook was not created: see the message beside the field.', true);
      } finally {
        button.disabled = false;
      }
    });
    show(form);
  }

  function renderCreated(w) {
    say('Webhook created.');
    show(
      el('h2', {}, 'Webhook created'),
      el('p', { className: 'url' }, w.url),
      onceNotice(secretRow('Token', w.token, 'created-token'), secretRow('Signing secret', w.signing_secret, 'created-secret')),
      el('div', { className: 'row' },
        el('a', { href: `#/webhooks/${w.id}`, className: 'button primary' }, 'Go to the webhook'),
        el('a', { href: '#/', className: 'button' }, 'Back to the list')));
  }

  // ---- one webhook ---------------------------------------------------------
  //
  // The page is built by one function per section, in the order shown. They
  // share nothing but `page`, the context renderWebhook hands each of them:
  //   path     the webhook's API path
  //   webhook  the latest answer about it; a section that changes the
  //            webhook stores the API's new answer here (the attempt detail
  //            reads its URL)
  //   showWebhook  shows `webhook` in the header again (URL, payload,
  //            throttle, headers, status, the failing banner)
  //   refresh  fetches the webhook again and shows it in the header
  //   reveal   shows a new token or signing secret, once, under the header
  //   reload   fetches the delivery log and the health chart again

  async function renderWebhook(id) {
    const path = `webhooks/${encodeURIComponent(id)}`;
    const revealed = el('div', { id: 'revealed' });
    // The hooks name sections built below: they are called only once all
    // are (from event handlers, and for the first load at the end).
    const page = {
      path,
      webhook: await api('GET', path),
      showWebhook: () => header.update(),
      refresh: async () => {
        page.webhook = await api('GET', path);
        header.update();
      },
      reveal: (notice) => revealed.replaceChildren(notice),
      reload: () => Promise.all([log.load(), health.load()]),
    };
    const header = webhookHeader(page);
    const health = healthPanel(page);
    const log = deliveryLog(page);
    show(
      ...header.nodes,
      revealed,
      settingsForm(page),
      secretsForm(page),
      testEventForm(page),
      health.section,
      recoverySection(page),
      log.section,
      deleteSection(page));
    await page.reload();
  }

  /**
   * The URL, the id, the payload form, the throttle, the custom headers,
   * the Authorization and the client certificate, the Active/Inactive
   * switch, and the failing banner; `update` shows `page.webhook` again.
   */
  function webhookHeader(page) {
    const heading = el('h2', { className: 'url' });
    const payloadText = el('span', { id: 'payload-text' });
    const throttleText = el('span', { id: 'throttle-text' });
    const throttledNote = el('p', { className: 'hint', id: 'throttled-note', hidden: true });
    const headersText = el('span', { id: 'headers-text' });
    const authText = el('span', { id: 'auth-text' });
    const identityText = el('span', { id: 'identity-text' });
    const statusSwitch = el('input', { type: 'checkbox', role: 'switch', id: 'status-switch' });
    const statusText = el('span', { id: 'status-text' });
    const banner = failingBanner(page);
    function update() {
      const w = page.webhook;
      heading.textContent = w.url;
      payloadText.textContent = PAYLOAD_FORMS[w.payload] || w.payload;
      throttleText.textContent = w.throttle_rate ? `at most ${w.throttle_rate} deliveries per second` : 'no cap';
      // As the API shows them: a secret's value masked.
      const held = w.headers || [];
      headersText.replaceChildren(...(held.length
        ? held.flatMap((h, i) => [i ? ', ' : '', el('span', { className: 'mono header-item' }, `${h.name}: ${h.value}`)])
        : ['none']));
      authText.textContent = authSummary(w.oauth2);
      identityText.textContent = identitySummary(w.client_tls);
      throttledNote.hidden = !w.throttled_since;
      throttledNote.textContent = w.throttled_since
        ? `Deliveries waiting under the throttle since ${formatTime(w.throttled_since)}.` : '';
      statusSwitch.checked = w.status === 'active';
      statusText.textContent = w.status === 'active' ? 'Active' : 'Inactive';
      banner.update();
    }
    statusSwitch.addEventListener('change', async () => {
      const wanted = statusSwitch.checked ? 'active' : 'inactive';
      statusSwitch.disabled = true;
      try {
        page.webhook = await api('PATCH', page.path, { status: wanted });
        update();
        say(`The webhook is now ${page.webhook.status}.`);
      } catch (err) {
        statusSwitch.checked = !statusSwitch.checked;
        say(err.message, true);
      } finally {
        statusSwitch.disabled = false;
        statusSwitch.focus();
      }
    });
    update();
    return {
      // Straight into <main>, unwrapped: the header has no element of its own.
      nodes: [
        el('p', {}, el('a', { href: '#/' }, '← All webhooks')),
        heading,
        el('p', { className: 'hint mono' }, page.webhook.id),
        el('p', { id: 'payload-summary' }, el('strong', {}, 'Payload: '), payloadText),
        el('p', { id: 'throttle-summary' }, el('strong', {}, 'Throttle: '), throttleText),
        throttledNote,
        el('p', { id: 'headers-summary' }, el('strong', {}, 'Headers: '), headersText),
        el('p', { id: 'auth-summary' }, el('strong', {}, 'Authorization: '), authText),
        el('p', { id: 'identity-summary' }, el('strong', {}, 'Client certificate: '), identityText),
        el('label', { className: 'switch', for: 'status-switch' }, statusSwitch, statusText),
        banner.node,
      ],
      update,
    };
  }

  /**
   * Where a recovery after a failing streak starts: the streak's start; else
   * the time in the platform's reason for turning the webhook off ("… since
   * <time> …"); else 5 days ago.
   */
  function failingSince(w) {
    if (w.failing_since) return w.failing_since;
    const match = /since (\S+)/.exec(w.disabled_reason || '');
    const t = match ? new Date(match[1].replace(/[.,;:…)]+$/, '')) : null;
    if (t && !Number.isNaN(t.getTime()) && t.getTime() < Date.now()) return t.toISOString();
    return new Date(Date.now() - 5 * 24 * 3600 * 1000).toISOString();
  }

  /**
   * While the webhook fails (`failing_since`) or the platform turned it off
   * (`disabled_reason`): since when, the last error or the reason, and one
   * button that turns it on again (if off) and resends what failed since
   * then. Its outcome stays below the banner after the banner goes.
   */
  function failingBanner(page) {
    const box = el('div', { id: 'failing-area' });
    const result = el('div', { id: 'failing-result', 'aria-live': 'polite' });
    const button = el('button', { type: 'button', className: 'primary', id: 'failing-recover' },
      'Re-enable and resend failed deliveries');
    button.addEventListener('click', async () => {
      button.disabled = true;
      result.replaceChildren('Working…');
      // Read before the webhook is turned on again: that ends the streak on record.
      const since = failingSince(page.webhook);
      try {
        if (page.webhook.status !== 'active') {
          page.webhook = await api('PATCH', page.path, { status: 'active' });
          say('The webhook is now active.');
        }
        const r = await startRecovery(page, { since });
        result.replaceChildren(recoveryDone(r, 'failing-recover-done'));
      } catch (err) {
        result.replaceChildren(el('p', { className: 'error-box' }, err.message));
      } finally {
        button.disabled = false;
      }
      try {
        await page.refresh();
        await page.reload();
      } catch (err) {
        fail(err);
      }
      (button.isConnected ? button : result).focus();
    });
    // What the banner shows: it is built again (and announced) only when that changes.
    let shown = null;
    function update() {
      const w = page.webhook;
      const disabled = w.status === 'inactive' && w.disabled_reason;
      const now = JSON.stringify([w.failing_since, w.last_error, disabled && w.disabled_reason]);
      if (now === shown) return;
      shown = now;
      if (!w.failing_since && !disabled) {
        box.replaceChildren(result);
        return;
      }
      box.replaceChildren(
        el('div', { className: 'banner', id: 'failing-banner', role: 'alert' },
          el('p', {}, el('strong', { id: 'failing-title' },
            w.failing_since ? `Failing since ${formatTime(w.failing_since)}` : 'Turned off by the platform')),
          w.last_error ? el('p', { id: 'failing-error' }, 'Last error: ', el('span', { className: 'mono' }, w.last_error)) : null,
          disabled ? el('p', { id: 'disabled-reason' }, `Disabled: ${w.disabled_reason}`) : null,
          button),
        result);
    }
    result.setAttribute('tabindex', '-1');
    return { node: box, update };
  }

  /** URL, events, description, retries, payload, throttle, custom headers and receiver authentication. */
  function settingsForm(page) {
    const w = page.webhook;
    const headers = headersField(w.headers);
    const auth = authField(w);
    const form = el('form', { novalidate: true, id: 'edit-form', 'aria-labelledby': 'edit-heading' },
      el('h3', { id: 'edit-heading' }, 'Settings'),
      errorSlot('_form'),
      urlField(w.url),
      eventCheckboxes(w.events, 'edit'),
      descriptionField(w.description),
      retryField(w.retry_policy),
      payloadField(w.payload),
      throttleField(w.throttle_rate),
      headers.node,
      auth.node,
      el('button', { type: 'submit', className: 'primary' }, 'Save changes'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      const description = form.querySelector('#description').value;
      const throttle = throttleValue(form);
      if (throttle === undefined) {
        say('Nothing was changed: see the message beside the field.', true);
        return;
      }
      const changes = {
        url: form.querySelector('#url').value.trim(),
        events: checkedEvents(form),
        description: description === '' ? null : description,
        retry_policy: form.querySelector('#retry-policy').value,
        payload: form.querySelector('#payload-form').value,
      };
      // Sent only when changed: null removes the cap.
      if (throttle !== (page.webhook.throttle_rate ?? null)) changes.throttle_rate = throttle;
      const list = headers.read(form);
      if (list === undefined) {
        say('Nothing was changed: see the message beside the field.', true);
        return;
      }
      // Sent only when changed: the whole list, [] removes every header.
      if (headersChanged(list, page.webhook.headers)) changes.headers = list;
      // Sent only when changed: oauth2 (null: back to the Basic token), client_tls (null: removed).
      Object.assign(changes, auth.read());
      try {
        page.webhook = await api('PATCH', page.path, changes);
        page.showWebhook();
        // Once sent, shown as the API holds them: a secret typed is no longer in its input.
        if (changes.headers) headers.fill(page.webhook.headers);
        // Always: a key or client secret typed (even one not sent) leaves its input.
        const focusInside = auth.node.contains(document.activeElement);
        auth.fill(page.webhook);
        if (focusInside) form.querySelector('button[type=submit]').focus();
        say('Changes saved.');
      } catch (err) {
        showFieldError(form, err);
        headers.markError(err);
        say('Nothing was changed: see the message beside the field.', true);
      }
    });
    return form;
  }

  /** The token (set or generated) and the signing secret (rotated), masked. */
  function secretsForm(page) {
    const w = page.webhook;
    const tokenMask = el('span', { className: 'mono', id: 'token-mask' }, w.token);
    const secretMask = el('span', { className: 'mono', id: 'secret-mask' }, w.signing_secret);
    const newToken = el('input', { type: 'text', id: 'new-token', name: 'token', className: 'mono', autocomplete: 'off', 'aria-describedby': 'token-error' });

    async function rotate(what, label) {
      try {
        page.webhook = await api('POST', `${page.path}/${what}`);
        const value = what === 'token' ? page.webhook.token : page.webhook.signing_secret;
        (what === 'token' ? tokenMask : secretMask).textContent = `****${value.slice(-4)}`;
        page.reveal(onceNotice(secretRow(label, value, `revealed-${what}`)));
        say(`${label} rotated.`);
      } catch (err) {
        say(err.message, true);
      }
    }

    const form = el('form', { novalidate: true, id: 'token-form', 'aria-labelledby': 'secrets-heading' },
      el('h3', { id: 'secrets-heading' }, 'Token and signing secret'),
      el('p', {}, 'Authorization token: ', tokenMask),
      el('div', { className: 'field' },
        el('label', { for: 'new-token' }, 'Set a token of your own'),
        el('div', { className: 'row' }, newToken,
          el('button', { type: 'submit' }, 'Set token'),
          el('button', { type: 'button', id: 'rotate-token', onclick: () => rotate('token', 'Token') }, 'Generate a new token')),
        errorSlot('token')),
      el('p', {}, 'Signing secret: ', secretMask, ' ',
        el('button', { type: 'button', id: 'rotate-secret', onclick: () => rotate('signing-secret', 'Signing secret') }, 'Rotate signing secret')),
      errorSlot('_form'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      try {
        page.webhook = await api('PATCH', page.path, { token: newToken.value });
        newToken.value = '';
        tokenMask.textContent = `****${page.webhook.token.slice(-4)}`;
        page.reveal(onceNotice(secretRow('Token', page.webhook.token, 'revealed-token')));
        say('Token changed.');
      } catch (err) {
        showFieldError(form, err);
      }
    });
    return form;
  }

  /** Sends a sample event now and shows its outcome; the log and chart follow. */
  function testEventForm(page) {
    const testType = el('select', { id: 'test-type', name: 'type' },
      eventTypes.map((t) => el('option', { value: t.name, selected: t.name === page.webhook.events[0] }, t.name)));
    const result = el('div', { id: 'test-result', 'aria-live': 'polite' });
    const form = el('form', { novalidate: true, id: 'test-form', 'aria-labelledby': 'test-heading' },
      el('h3', { id: 'test-heading' }, 'Send a test event'),
      el('p', { className: 'hint' }, 'Sends a sample event right away, signed like a real delivery, whatever the status.'),
      el('div', { className: 'row' },
        el('label', { for: 'test-type', className: 'visually-plain' }, 'Event type'), testType,
        el('button', { type: 'submit' }, 'Send test event')),
      result);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const button = form.querySelector('button');
      button.disabled = true;
      result.replaceChildren('Sending…');
      try {
        const d = await api('POST', `${page.path}/test`, { type: testType.value });
        result.replaceChildren(el('div', { className: 'panel' },
          el('p', {}, 'Outcome: ', outcomeBadge(d.outcome),
            d.status ? ` · HTTP ${d.status}` : '', ` · ${d.duration_ms} ms`),
          d.error ? el('p', {}, `Error: ${d.error}`) : null,
          d.response_body ? el('pre', { className: 'snippet' }, d.response_body) : null));
        await page.reload();
      } catch (err) {
        result.replaceChildren(el('p', { className: 'error-box' }, err.message));
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  /** The health chart with its window (24h, 7d, 30d); empty until loaded. */
  function healthPanel(page) {
    const section = el('section', { 'aria-labelledby': 'health-heading', id: 'health' });
    let range = '24h';
    async function load() {
      const stats = await api('GET', `${page.path}/stats?window=${range}`);
      section.replaceChildren(
        el('h3', { id: 'health-heading' }, 'Health'),
        el('div', { className: 'row', role: 'group', 'aria-label': 'Time window' },
          ['24h', '7d', '30d'].map((choice) => el('button', {
            type: 'button',
            'aria-pressed': String(choice === range),
            onclick: () => { range = choice; load().catch(fail); },
          }, choice))),
        healthChart(stats));
    }
    return { section, load };
  }

  /** The value of a datetime-local input for a time, in the browser's zone. */
  function localDateTime(t) {
    const pad = (n) => String(n).padStart(2, '0');
    return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}`;
  }

  /** Queues the failed deliveries of `range` ({since, until?}): POST …/recover. */
  async function startRecovery(page, range) {
    const r = await api('POST', `${page.path}/recover`, range);
    say(`Recovery ${r.recovery_id}: ${r.queued} queued.`);
    return r;
  }

  /** What a started recovery queued, as a paragraph with `id`. */
  function recoveryDone(r, id) {
    const pending = r.already_pending ? ` ${r.already_pending} were already queued and not sent yet.` : '';
    return el('p', { id }, r.status === 'running'
      ? `Queued ${r.queued} failed deliveries so far; the rest of the window follows in the background.${pending}`
      : `Queued ${r.queued} failed deliveries. They appear in the log once sent.${pending}`);
  }

  /**
   * Resend what failed since a time: counted first (a dry run), then
   * confirmed with that count, then queued (POST …/recover).
   */
  function recoverySection(page) {
    const since = el('input', { type: 'datetime-local', id: 'recover-since', required: true,
      value: localDateTime(new Date(Date.now() - 24 * 3600 * 1000)) });
    const result = el('div', { id: 'recover-result', 'aria-live': 'polite' });
    const question = el('p', { id: 'recover-question' });
    const yes = el('button', { type: 'button', className: 'primary', id: 'recover-yes' }, 'Resend');
    const confirm = el('div', { id: 'recover-confirm', hidden: true, role: 'alertdialog', 'aria-labelledby': 'recover-question' },
      question,
      el('div', { className: 'row' }, yes,
        el('button', { type: 'button', onclick: () => { confirm.hidden = true; form.querySelector('button').focus(); } }, 'Cancel')));
    const form = el('form', { novalidate: true, id: 'recover-form' },
      el('p', { className: 'hint' }, 'After an outage: every event since then whose last attempt to this webhook failed is sent again, once, with its original webhook-id. Events delivered are not sent again.'),
      el('div', { className: 'row' },
        el('label', { for: 'recover-since' }, 'Resend failed deliveries since'), since,
        el('button', { type: 'submit' }, 'Resend failed deliveries…')));
    // The window counted is the window sent: "until" is fixed when counting.
    let counted = null;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const from = new Date(since.value);
      if (Number.isNaN(from.getTime())) {
        result.replaceChildren(el('p', { className: 'error-box' }, 'Choose a date and time.'));
        return;
      }
      result.replaceChildren('Counting…');
      confirm.hidden = true;
      try {
        counted = { since: from.toISOString(), until: new Date().toISOString() };
        const p = await api('POST', `${page.path}/recover`, { ...counted, dry_run: true });
        result.replaceChildren();
        if (p.would_queue === 0 && p.complete) {
          result.replaceChildren(el('p', {}, `Nothing to resend: no event since ${formatTime(p.since)} failed its last attempt to this webhook.`));
          return;
        }
        const count = p.complete ? `${p.would_queue}` : `at least ${p.would_queue}`;
        question.textContent = `Resend ${count} failed deliveries since ${formatTime(p.since)}?`
          + (p.complete ? '' : ` (counted among the newest ${p.events_checked} events; the rest of the window is checked as they are sent)`);
        yes.textContent = `Yes, resend ${count}`;
        confirm.hidden = false;
        yes.focus();
      } catch (err) {
        result.replaceChildren(el('p', { className: 'error-box' }, err.message));
      }
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        const r = await startRecovery(page, counted);
        confirm.hidden = true;
        result.replaceChildren(recoveryDone(r, 'recover-done'));
      } catch (err) {
        result.replaceChildren(el('p', { className: 'error-box' }, err.message));
      } finally {
        yes.disabled = false;
      }
    });
    return el('section', { 'aria-labelledby': 'recover-heading', id: 'recover' },
      el('h3', { id: 'recover-heading' }, 'Resend failed deliveries'), form, confirm, result);
  }

  // Outcome::ALL (shared/src/delivery/outcome.rs), in its order, by wire name;
  // a test in functions/api/src/dashboard.rs holds the two in step.
  const OUTCOMES = ['delivered', 'http_error', 'timeout', 'connect_error', 'tls_error', 'blocked', 'redirect', 'response_too_large', 'token_error'];
  const LOG_WINDOWS = [['', 'Any time'], ['1', 'Last hour'], ['24', 'Last 24 hours'], ['168', 'Last 7 days']];

  /**
   * The delivery log, newest first, 20 a page, with its filters and the
   * detail of one attempt. The section stays empty until the first page is
   * loaded; the filters are built once, so that a change keeps the focus.
   */
  function deliveryLog(page) {
    const section = el('section', { 'aria-labelledby': 'log-heading' });
    const state = { cursors: [null], page: 0 };
    const filters = logFilters(() => {
      state.cursors = [null];
      state.page = 0;
      load().catch(fail);
    });
    const body = el('div', {});
    const detail = el('div', { id: 'attempt-detail', 'aria-live': 'polite' });

    async function load() {
      const cursor = state.cursors[state.page];
      const query = (cursor ? `&cursor=${encodeURIComponent(cursor)}` : '') + filters.query();
      const log = await api('GET', `${page.path}/deliveries?limit=20${query}`);
      const rows = log.data.map((d) => deliveryRow(page, d, () => showAttempt(page, detail, d).catch(fail)));
      body.replaceChildren(
        rows.length
          ? el('table', { className: 'responsive', id: 'delivery-log' },
            el('thead', {}, el('tr', {}, ['Time', 'Event', 'Outcome', 'Status', 'Duration', 'Response', 'Again', 'Details'].map((h) => el('th', {}, h)))),
            el('tbody', {}, rows))
          : el('p', {}, filters.active() ? 'No deliveries match these filters.' : 'No deliveries yet.'),
        el('nav', { className: 'pager', 'aria-label': 'Delivery log pages' },
          el('button', { type: 'button', disabled: state.page === 0, onclick: () => { state.page -= 1; load().catch(fail); } }, 'Newer'),
          el('button', { type: 'button', disabled: !log.next_cursor, onclick: () => {
            state.cursors[state.page + 1] = log.next_cursor;
            state.page += 1;
            load().catch(fail);
          } }, 'Older')));
      if (!section.contains(filters.node)) {
        section.replaceChildren(el('h3', { id: 'log-heading' }, 'Delivery log'), filters.node, body, detail);
      }
    }
    return { section, load };
  }

  /** The log's filters (outcome, event type, time); `onChange` on any change. */
  function logFilters(onChange) {
    const outcome = el('select', { id: 'filter-outcome' },
      el('option', { value: '' }, 'Any outcome'), OUTCOMES.map((o) => el('option', { value: o }, o.replace(/_/g, ' '))));
    const type = el('select', { id: 'filter-type' },
      el('option', { value: '' }, 'Any event type'), eventTypes.map((t) => el('option', { value: t.name }, t.name)));
    const time = el('select', { id: 'filter-window' }, LOG_WINDOWS.map(([v, label]) => el('option', { value: v }, label)));
    const node = el('div', { className: 'row filters', id: 'log-filters', role: 'group', 'aria-label': 'Filter the delivery log' },
      el('label', { for: 'filter-outcome', className: 'visually-hidden' }, 'Filter by outcome'), outcome,
      el('label', { for: 'filter-type', className: 'visually-hidden' }, 'Filter by event type'), type,
      el('label', { for: 'filter-window', className: 'visually-hidden' }, 'Filter by time'), time);
    for (const select of [outcome, type, time]) select.addEventListener('change', onChange);
    return {
      node,
      active: () => Boolean(outcome.value || type.value || time.value),
      /** The filters as query parameters, each starting with `&`. */
      query: () => {
        let q = '';
        if (outcome.value) q += `&outcome=${encodeURIComponent(outcome.value)}`;
        if (type.value) q += `&type=${encodeURIComponent(type.value)}`;
        if (time.value) {
          const since = new Date(Date.now() - Number(time.value) * 3600 * 1000);
          q += `&since=${encodeURIComponent(since.toISOString())}`;
        }
        return q;
      },
    };
  }

  /** One attempt in the log, with Redeliver (not for a test) and Details. */
  function deliveryRow(page, d, onDetails) {
    return el('tr', {},
      el('td', { 'data-label': 'Time' }, formatTime(d.attempted_at)),
      el('td', { 'data-label': 'Event' }, d.event_type,
        d.test ? el('span', { className: 'badge' }, ' test') : null,
        d.attempt > 1 ? el('span', { className: 'badge' }, `attempt ${d.attempt}${d.manual ? ', manual' : ''}`) : null,
        el('br'), el('small', { className: 'mono' }, d.event_id)),
      el('td', { 'data-label': 'Outcome' }, outcomeBadge(d.outcome)),
      el('td', { 'data-label': 'Status' }, d.status ? String(d.status) : '—'),
      el('td', { 'data-label': 'Duration' }, `${d.duration_ms} ms`),
      el('td', { 'data-label': 'Response' }, el('span', { className: 'snippet' }, d.response_body || d.error || ''),
        d.next_attempt_at ? el('small', { className: 'hint' }, el('br'), `next attempt ${formatTime(d.next_attempt_at)}`) : null),
      el('td', { 'data-label': 'Again' }, d.test ? '' : el('button', {
        type: 'button',
        'aria-label': `Redeliver ${d.event_id}`,
        onclick: async () => {
          try {
            const r = await api('POST', `${page.path}/deliveries/${encodeURIComponent(d.id)}/redeliver`);
            say(`Queued: attempt ${r.queued[0].attempt} of ${d.event_id}. It appears in the log once sent.`);
          } catch (err) {
            say(err.message, true);
          }
        },
      }, 'Redeliver')),
      el('td', { 'data-label': 'Details' }, el('button', {
        type: 'button',
        'aria-label': `Details of attempt ${d.attempt} of ${d.event_id}`,
        onclick: onDetails,
      }, 'Details')));
  }

  // An event's `payload` state, as the attempt detail shows it.
  const PAYLOAD_STATES = {
    kept: 'kept',
    not_kept: 'not kept (the payload retention was 0 hours)',
    too_large: 'not kept (too large)',
    expired: 'expired (past the payload retention)',
    deleted: 'deleted',
  };

  // Why a full body cannot be rebuilt, by the event's `payload` state.
  const BODY_MISSING = {
    not_kept: 'The event’s data was not kept (the payload retention was 0 hours); its body is not shown.',
    too_large: 'The event was too large to keep; its body is not shown.',
    expired: 'The event’s data is past its retention; its body is not shown.',
    deleted: 'The event’s data was deleted; its body is not shown.',
  };

  /**
   * The body a receiver got, rebuilt from the kept event in the webhook's
   * payload form as it is now (the settings may have changed it since): a
   * thin body needs no data, a full one needs it kept.
   */
  function requestBody(form, e) {
    const envelope = { id: e.id, type: e.type, timestamp: e.timestamp };
    if (e.subject !== undefined) envelope.subject = e.subject;
    if (form === 'thin') return JSON.stringify(envelope, null, 2);
    if (e.payload !== 'kept') return BODY_MISSING[e.payload] || `The event’s data is ${e.payload}; its body is not shown.`;
    return JSON.stringify({ ...envelope, data: e.data }, null, 2);
  }

  /**
   * The event's subject and payload state, with "Delete payload" behind a
   * confirmation while there may be data to erase; `done` runs once it is
   * deleted.
   */
  function eventPayloadPanel(e, done) {
    const erasable = e.payload === 'kept' || e.payload === 'expired';
    const ask = el('button', { type: 'button', id: 'delete-payload', onclick: () => {
      ask.hidden = true;
      question.hidden = false;
      question.querySelector('button').focus();
    } }, 'Delete payload');
    const question = el('div', { id: 'delete-payload-confirm', hidden: true, role: 'alertdialog', 'aria-labelledby': 'delete-payload-question' },
      el('p', { id: 'delete-payload-question' },
        `Delete the payload of ${e.id}? Its data is erased; the event and its deliveries stay listed, and it can no longer be redelivered or resent. This cannot be undone.`),
      el('div', { className: 'row' },
        el('button', { type: 'button', className: 'danger', onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api('DELETE', `events/${encodeURIComponent(e.id)}/payload`);
            say(`Deleted the payload of ${e.id}.`);
            await done();
          } catch (err) {
            ev.target.disabled = false;
            say(err.message, true);
          }
        } }, 'Yes, delete the payload'),
        el('button', { type: 'button', onclick: () => { question.hidden = true; ask.hidden = false; ask.focus(); } }, 'Keep the payload')));
    return el('div', { id: 'attempt-event' },
      el('p', {},
        e.subject !== undefined ? ['Subject: ', el('span', { className: 'mono', id: 'attempt-subject' }, e.subject), ' · '] : null,
        'Payload: ', el('span', { className: 'badge', id: 'attempt-payload' }, PAYLOAD_STATES[e.payload] || e.payload)),
      erasable ? ask : null,
      erasable ? question : null);
  }

  /**
   * One attempt in full, in `detail`: the event's subject and payload state,
   * the request as it was sent (the token and the signature masked; the body
   * rebuilt from the kept event), and the response (status, time, the first
   * KiB of its body).
   */
  async function showAttempt(page, detail, d) {
    const timestamp = Math.floor(new Date(d.attempted_at).getTime() / 1000);
    const headers = [
      ['Content-Type', 'application/json'],
      // As the webhook authenticates now: the settings may have changed it since.
      ['Authorization', page.webhook.oauth2 ? 'Bearer ****' : 'Basic ****'],
      ['webhook-id', d.event_id],
      ['webhook-timestamp', String(timestamp)],
      ['webhook-signature', 'v1,****'],
    ];
    if (d.test) headers.push(['webhook-test', 'true']);
    let body;
    let event = null;
    if (d.test) {
      body = 'A test event: its body is not kept.';
    } else {
      try {
        event = await api('GET', `events/${encodeURIComponent(d.event_id)}`);
        body = requestBody(page.webhook.payload, event);
      } catch (err) {
        body = err.status === 404 ? 'The event is no longer kept (past its retention).' : err.message;
      }
    }
    detail.replaceChildren(el('section', { className: 'panel', 'aria-labelledby': 'attempt-heading' },
      el('h4', { id: 'attempt-heading' }, `Attempt ${d.attempt} of ${d.event_id}`),
      el('p', {}, formatTime(d.attempted_at), ' · ', outcomeBadge(d.outcome),
        d.status ? ` · HTTP ${d.status}` : '', ` · ${d.duration_ms} ms`),
      event ? eventPayloadPanel(event, () => showAttempt(page, detail, d)) : null,
      el('h5', {}, 'Request'),
      // The URL as it is now: the settings may have changed it since.
      el('pre', { className: 'snippet', id: 'attempt-request' },
        `POST ${page.webhook.url}\n${headers.map(([n, v]) => `${n}: ${v}`).join('\n')}\n\n${body}`),
      el('h5', {}, 'Response'),
      el('pre', { className: 'snippet', id: 'attempt-response' },
        d.status ? `HTTP ${d.status}\n\n${(d.response_body || '').slice(0, 1024)}` : (d.error || d.outcome)),
      el('button', { type: 'button', onclick: () => detail.replaceChildren() }, 'Close')));
    detail.querySelector('h4').setAttribute('tabindex', '-1');
    detail.querySelector('h4').focus();
  }

  /** Delete, behind a confirmation on the page. */
  function deleteSection(page) {
    const confirm = el('div', { id: 'delete-confirm', hidden: true, role: 'alertdialog', 'aria-labelledby': 'delete-question' },
      el('p', { id: 'delete-question' }, 'Delete this webhook? Deliveries to it stop at once. This cannot be undone.'),
      el('div', { className: 'row' },
        el('button', { type: 'button', className: 'danger', id: 'delete-confirm-button', onclick: async () => {
          try {
            await api('DELETE', page.path);
            say('Webhook deleted.');
            location.hash = '#/';
          } catch (err) {
            say(err.message, true);
          }
        } }, 'Yes, delete it'),
        el('button', { type: 'button', onclick: () => { confirm.hidden = true; deleteButton.focus(); } }, 'Cancel')));
    const deleteButton = el('button', { type: 'button', className: 'danger', id: 'delete-button', onclick: () => {
      confirm.hidden = false;
      confirm.querySelector('button').focus();
    } }, 'Delete webhook');
    return el('section', { 'aria-label': 'Danger zone' }, el('h3', {}, 'Delete'), deleteButton, confirm);
  }

  // ---- API keys ------------------------------------------------------------

  // The keys still active that `id` made, directly or through keys it made.
  function madeFrom(keys, id) {
    const tree = [id];
    for (let i = 0; i < tree.length; i += 1) {
      keys.filter((k) => k.created_by === tree[i] && !tree.includes(k.id)).forEach((k) => tree.push(k.id));
    }
    return keys.filter((k) => tree.slice(1).includes(k.id) && k.status !== 'revoked');
  }

  async function renderApiKeys() {
    const list = await api('GET', 'api-keys');
    const rows = list.data.map((k) => {
      const what = k.name ? `“${k.name}” (${k.prefix}…)` : `${k.prefix}…`;
      const made = madeFrom(list.data, k.id);
      const withMade = el('input', { type: 'checkbox', id: `with-made-${k.id}` });
      const alsoMade = made.length === 0 ? '' : el('p', {}, withMade, ' ',
        el('label', { for: `with-made-${k.id}` },
          `Also revoke the ${made.length === 1 ? 'key' : `${made.length} keys`} made with it: ${made.map((m) => `${m.prefix}…`).join(', ')}`));
      const question = el('div', { hidden: true, role: 'alertdialog', 'aria-label': `Revoke ${what}?` },
        el('p', {}, `Revoke ${what}? It can change nothing from now on, and stops reading within 30 seconds. This cannot be undone.`),
        alsoMade,
        el('div', { className: 'row' },
          el('button', { type: 'button', className: 'danger', onclick: async (e) => {
            e.target.disabled = true;
            try {
              const tree = withMade.checked ? '?with_descendants=true' : '';
              await api('DELETE', `api-keys/${encodeURIComponent(k.id)}${tree}`);
              await renderApiKeys();
              say(`API key ${what} revoked.`);
            } catch (err) {
              e.target.disabled = false;
              say(err.message, true);
            }
          } }, 'Yes, revoke it'),
          el('button', { type: 'button', onclick: () => { question.hidden = true; ask.hidden = false; ask.focus(); } }, 'Keep it')));
      const ask = el('button', { type: 'button', 'aria-label': `Revoke ${what}`, onclick: () => {
        ask.hidden = true;
        question.hidden = false;
        question.querySelector('button').focus();
      } }, 'Revoke');
      const revoke = k.status === 'revoked' ? '' : el('div', {}, ask, question);
      return el('tr', {},
        el('td', { 'data-label': 'Name' }, k.name || '—'),
        el('td', { 'data-label': 'Key', className: 'mono' }, `${k.prefix}…`),
        el('td', { 'data-label': 'Scope' }, k.scope),
        el('td', { 'data-label': 'Status' }, el('span', { className: `badge ${k.status === 'active' ? 'active' : 'inactive'}` }, k.status)),
        el('td', { 'data-label': 'Created' }, k.created_at ? formatTime(k.created_at) : '—'),
        el('td', { 'data-label': 'Expires' }, k.expires_at ? formatTime(k.expires_at) : 'never'),
        el('td', { 'data-label': 'Last used' }, k.last_used_at ? formatTime(k.last_used_at) : 'never'),
        el('td', {}, revoke));
    });
    const form = el('form', { novalidate: true, id: 'new-api-key-form' },
      el('h3', {}, 'New API key'),
      errorSlot('_form'),
      el('div', { className: 'field' },
        el('label', { for: 'key-name' }, 'Name'),
        el('input', { type: 'text', id: 'key-name', name: 'name', maxlength: 100, 'aria-describedby': 'key-name-hint name-error' }),
        el('p', { className: 'hint', id: 'key-name-hint' }, 'What it is for, e.g. “ci” or “reporting”.'),
        errorSlot('name')),
      el('div', { className: 'field' },
        el('label', { for: 'key-scope' }, 'Scope'),
        el('select', { id: 'key-scope', name: 'scope' },
          el('option', { value: 'full' }, 'Full: every operation'),
          el('option', { value: 'read' }, 'Read: view only')),
        errorSlot('scope')),
      el('div', { className: 'field' },
        el('label', { for: 'key-expires' }, 'Expires on (optional)'),
        el('input', { type: 'date', id: 'key-expires', name: 'expires_at', 'aria-describedby': 'expires_at-error' }),
        errorSlot('expires_at')),
      el('button', { type: 'submit', className: 'primary' }, 'Create API key'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      const body = { scope: form.querySelector('#key-scope').value };
      const name = form.querySelector('#key-name').value.trim();
      if (name) body.name = name;
      const day = form.querySelector('#key-expires').value;
      if (day) body.expires_at = `${day}T00:00:00Z`;
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const created = await api('POST', 'api-keys', body);
        say('API key created.');
        show(
          el('h2', {}, 'API key created'),
          onceNotice(secretRow('API key', created.key, 'created-api-key')),
          el('a', { href: '#/api-keys', className: 'button primary', onclick: () => renderApiKeys().catch(fail) }, 'Back to the API keys'));
      } catch (err) {
        showFieldError(form, err);
        say('The API key was not created: see the message beside the field.', true);
      } finally {
        button.disabled = false;
      }
    });
    show(
      el('h2', {}, 'API keys'),
      el('p', {}, 'Keys that can call the API for your account. A key is shown once, when it is created; here you see its first characters only.'),
      rows.length
        ? el('table', { className: 'responsive', id: 'api-key-list' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Key'), el('th', {}, 'Scope'), el('th', {}, 'Status'), el('th', {}, 'Created'), el('th', {}, 'Expires'), el('th', {}, 'Last used'), el('th', {}, el('span', { className: 'visually-hidden' }, 'Actions')))),
          el('tbody', {}, rows))
        : el('p', {}, 'No keys listed.'),
      form);
  }

  // ---- settings --------------------------------------------------------------

  /**
   * The tenant's data-protection settings. Shown to every key; a read key's
   * save is refused by the API (403), and its message shown on the form.
   */
  async function renderSettings() {
    const current = await api('GET', 'settings');
    const hours = el('input', {
      type: 'number', id: 'retention-hours', name: 'payload_retention_hours', min: 0, max: 168, step: 1,
      inputmode: 'numeric', value: String(current.payload_retention_hours),
      'aria-describedby': 'retention-hours-hint payload_retention_hours-error',
    });
    const keepBodies = el('input', {
      type: 'checkbox', id: 'keep-response-bodies', name: 'keep_response_bodies', checked: current.keep_response_bodies,
      'aria-describedby': 'keep-response-bodies-hint keep_response_bodies-error',
    });
    const saved = el('p', { id: 'settings-saved', 'aria-live': 'polite' });
    const form = el('form', { novalidate: true, id: 'settings-form' },
      el('h2', {}, 'Settings'),
      el('p', {}, 'What is kept of this account’s events and of its receivers’ answers. A change applies to events accepted from then on: data already kept keeps the retention it was kept with.'),
      errorSlot('_form'),
      el('div', { className: 'field' },
        el('label', { for: 'retention-hours' }, 'Payload retention (hours)'),
        hours,
        el('p', { className: 'hint', id: 'retention-hours-hint' },
          'From 0 to 168 (7 days). 0 = never stored; deliveries still carry the data. Only kept data can be read back, redelivered or resent.'),
        errorSlot('payload_retention_hours')),
      el('div', { className: 'field' },
        el('label', { className: 'check', for: 'keep-response-bodies' }, keepBodies, el('span', {}, 'Keep receivers’ response bodies')),
        el('p', { className: 'hint', id: 'keep-response-bodies-hint' },
          'The first KiB of each answer, shown in the delivery log. Off: its status, time and outcome only.'),
        errorSlot('keep_response_bodies')),
      el('button', { type: 'submit', className: 'primary' }, 'Save settings'),
      saved);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      saved.textContent = '';
      // A number input reads '' when empty or not a number: nothing to send.
      if (hours.value.trim() === '') {
        showFieldError(form, { field: 'payload_retention_hours', message: 'Enter a whole number of hours from 0 to 168.' });
        say('Nothing was changed: see the message beside the field.', true);
        return;
      }
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        // Any number goes to the API, which names the field when it is out of range.
        const now = await api('PATCH', 'settings', {
          payload_retention_hours: Number(hours.value),
          keep_response_bodies: keepBodies.checked,
        });
        hours.value = String(now.payload_retention_hours);
        keepBodies.checked = now.keep_response_bodies;
        saved.textContent = `Saved: payload retention ${now.payload_retention_hours} hours; `
          + `receivers’ response bodies ${now.keep_response_bodies ? 'kept' : 'not kept'}.`;
        say('Settings saved.');
      } catch (err) {
        showFieldError(form, err);
        say(err.status === 403
          ? 'Nothing was changed: this API key can read the settings but not change them.'
          : 'Nothing was changed: see the message beside the field.', true);
      } finally {
        button.disabled = false;
      }
    });
    show(form);
  }

  // ---- activity (the audit log) ----------------------------------------------

  // shared::audit::Action::ALL, in its order, by wire name: the filter offers each.
  const AUDIT_ACTIONS = ['webhook.created', 'webhook.updated', 'webhook.deleted', 'webhook.token_rotated', 'webhook.signing_secret_rotated', 'webhook.disabled', 'api_key.created', 'api_key.revoked', 'api_key.rotated', 'settings.updated', 'event.payload_deleted', 'event.redelivered', 'recovery.started', 'tenant.purged'];

  // The names in an entry's changes whose values are times, shown in local time.
  const TIME_CHANGES = /(^|_)(at|since|until)$/;

  /**
   * A value of an entry's changes as text: a list joined, null as "none", a
   * time (by its name) in local time, client credentials as "client … at
   * host", a client certificate by its fingerprint and expiry.
   */
  function changeValue(value, name) {
    if (value === null || value === undefined) return 'none';
    if (Array.isArray(value)) return value.length ? value.map((v) => changeValue(v, name)).join(', ') : 'none';
    // Client credentials and a client identity, as the log names them (never a secret or a key).
    if (name === 'oauth2' && typeof value === 'object' && 'client_id' in value) return `client ${value.client_id} at ${value.token_host}`;
    if (name === 'client_tls' && typeof value === 'object' && 'fingerprint' in value) {
      return `SHA-256 ${value.fingerprint.slice(0, 16)}…${value.not_after ? `, expires ${formatDay(value.not_after)}` : ''}`;
    }
    if (typeof value === 'object') return JSON.stringify(value);
    if (typeof value === 'string' && TIME_CHANGES.test(name)) return formatTime(value);
    return String(value);
  }

  /**
   * An entry's changes, one line each, as the API gave them: the fields
   * changed first ("fields: url, token"), then each value, an old and new
   * pair as "old → new" ("url: a.example.com → b.example.net"). A key
   * whose value is null (e.g. no expiry) is left out.
   */
  function changeLines(changes) {
    if (!changes || typeof changes !== 'object') return [];
    const names = Object.keys(changes).sort((a, b) => (b === 'fields') - (a === 'fields'));
    return names.filter((name) => changes[name] !== null && changes[name] !== undefined).map((name) => {
      const v = changes[name];
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        if ('old_host' in v || 'new_host' in v) return `${name}: ${changeValue(v.old_host, name)} → ${changeValue(v.new_host, name)}`;
        if ('old' in v || 'new' in v) return `${name}: ${changeValue(v.old, name)} → ${changeValue(v.new, name)}`;
      }
      return `${name}: ${changeValue(v, name)}`;
    });
  }

  /** Who made the change: an API key by its first characters and id, the operator, or the platform. */
  function actorCell(actor) {
    if (actor && actor.type === 'api_key') {
      return [el('span', { className: 'mono' }, `${actor.prefix}…`), el('br'), el('small', { className: 'mono' }, actor.id)];
    }
    return actor && actor.type ? actor.type : '—';
  }

  /** What it was done to: its kind and id; a webhook that still exists links to its page. */
  function targetCell(target, webhooks) {
    if (!target) return '—';
    const id = target.type === 'webhook' && webhooks.has(target.id)
      ? el('a', { href: `#/webhooks/${encodeURIComponent(target.id)}`, className: 'mono' }, target.id)
      : el('span', { className: 'mono' }, target.id);
    return [target.type.replace(/_/g, ' '), el('br'), el('small', {}, id)];
  }

  function activityRow(entry, webhooks) {
    const lines = changeLines(entry.changes);
    return el('tr', { 'data-id': entry.id },
      el('td', { 'data-label': 'Time' }, el('time', { datetime: entry.at }, formatTime(entry.at))),
      el('td', { 'data-label': 'Action', className: 'mono action' }, entry.action),
      el('td', { 'data-label': 'Who' }, actorCell(entry.actor)),
      el('td', { 'data-label': 'Target' }, targetCell(entry.target, webhooks)),
      el('td', { 'data-label': 'Changes', className: 'changes' },
        lines.length ? el('ul', {}, lines.map((line) => el('li', {}, line))) : '—'));
  }

  /** The ids of the tenant's webhooks, to link the entries about one that still exists. */
  async function webhookIds() {
    const ids = new Set();
    let cursor = null;
    // A bounded walk: past it, the rest are shown without a link.
    for (let pages = 0; pages < 10; pages += 1) {
      const list = await api('GET', `webhooks?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      list.data.forEach((w) => ids.add(w.id));
      cursor = list.next_cursor;
      if (!cursor) break;
    }
    return ids;
  }

  /**
   * The tenant's audit log, newest first, 20 entries at a time ("Load
   * more", with the API's next_cursor), filtered by action. The filter is
   * built once, so that a change keeps the focus; an answer that arrives
   * after the filter changed is dropped.
   */
  async function renderActivity() {
    const action = el('select', { id: 'activity-action' },
      el('option', { value: '' }, 'All actions'), AUDIT_ACTIONS.map((a) => el('option', { value: a }, a)));
    const body = el('div', { id: 'activity-body' });
    let webhooks = new Set();
    // Counts the filter's changes: a page loaded for an older one is not shown.
    let generation = 0;

    /**
     * The next entries after `cursor`. A page filtered by action may come
     * back empty with a next_cursor (the API reads a bounded stretch of the
     * log per call): the next pages are read, a few at most, until one has
     * an entry.
     */
    async function entries(cursor) {
      const filter = action.value ? `&action=${encodeURIComponent(action.value)}` : '';
      let next = cursor;
      for (let tries = 0; tries < 5; tries += 1) {
        const log = await api('GET', `audit-log?limit=20${filter}${next ? `&cursor=${encodeURIComponent(next)}` : ''}`);
        next = log.next_cursor;
        if (log.data.length || !next) return { data: log.data, next };
      }
      return { data: [], next };
    }

    /** "Load more" while the API gives a next_cursor, else the end of the log. */
    function tail(next, table, rows) {
      if (!next) return el('p', { className: 'hint', id: 'activity-end' }, 'No older entries.');
      const button = el('button', { type: 'button', id: 'activity-more' }, 'Load more');
      const node = el('div', { className: 'pager' }, button);
      button.addEventListener('click', async () => {
        button.disabled = true;
        const mine = generation;
        try {
          const more = await entries(next);
          if (mine !== generation) return;
          rows.append(...more.data.map((entry) => activityRow(entry, webhooks)));
          if (rows.children.length) {
            table.hidden = false;
            body.querySelector('#activity-none')?.remove();
          }
          const after = tail(more.next, table, rows);
          node.replaceWith(after);
          after.querySelector('button')?.focus();
          say(`${more.data.length} older ${more.data.length === 1 ? 'entry' : 'entries'} loaded.`);
        } catch (err) {
          button.disabled = false;
          fail(err);
        }
      });
      return node;
    }

    async function load() {
      generation += 1;
      const mine = generation;
      const first = await entries(null);
      if (mine !== generation) return;
      if (!first.data.length && !first.next) {
        body.replaceChildren(el('p', {}, action.value ? 'No activity matches this filter.' : 'No activity yet.'));
        return;
      }
      const rows = el('tbody', {}, first.data.map((entry) => activityRow(entry, webhooks)));
      const table = el('table', { className: 'responsive', id: 'activity-log', hidden: !first.data.length },
        el('thead', {}, el('tr', {}, ['Time', 'Action', 'Who', 'Target', 'Changes'].map((h) => el('th', {}, h)))),
        rows);
      const none = el('p', { id: 'activity-none' }, 'None of the newest entries matches this filter.');
      body.replaceChildren(...(first.data.length ? [] : [none]), table, tail(first.next, table, rows));
    }

    action.addEventListener('change', () => load().catch(fail));
    try {
      webhooks = await webhookIds();
    } catch (err) {
      // Without the list, the entries are shown without links.
      if (err.status === 401) throw err;
    }
    show(
      el('h2', {}, 'Activity'),
      el('p', {}, 'Who changed what in this account, and when: webhooks, API keys, settings and data, newest first.'),
      el('div', { className: 'row filters', id: 'activity-filters' },
        el('label', { for: 'activity-action' }, 'Filter by action'), action),
      body);
    await load();
  }

  // ---- routing ---------------------------------------------------------------

  function fail(err) {
    if (err && err.status === 401) return;
    if (err && err.status === 404) {
      show(el('h2', {}, 'Not found'), el('p', {}, 'No such webhook (it may have been deleted).'), el('a', { href: '#/' }, 'All webhooks'));
      return;
    }
    say(err && err.message ? err.message : String(err), true);
  }

  async function route() {
    if (!apiKey()) {
      renderSignIn();
      return;
    }
    signOutButton.hidden = false;
    nav.hidden = false;
    if (!eventTypes.length) await loadEventTypes();
    const hash = location.hash || '#/';
    const match = hash.match(/^#\/webhooks\/([^/]+)$/);
    if (hash === '#/new') renderNew();
    else if (hash === '#/api-keys') await renderApiKeys();
    else if (hash === '#/settings') await renderSettings();
    else if (hash === '#/activity') await renderActivity();
    else if (match) await renderWebhook(decodeURIComponent(match[1]));
    else {
      listState.cursors = [null];
      listState.page = 0;
      await renderList();
    }
  }

  signOutButton.addEventListener('click', () => {
    signOut();
    say('Signed out: the API key is forgotten.');
  });
  window.addEventListener('hashchange', () => {
    // A message belongs to the view it was said on; "deleted" survives the move to the list.
    if (!statusLine.textContent.endsWith('deleted.')) say('');
    route().catch(fail);
  });
  route().catch(fail);
})();
