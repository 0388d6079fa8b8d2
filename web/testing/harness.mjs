// Test harness: a fake https://app.powerbi.com on loopback (self-signed certificate made now, trusted by this
// Chromium run only via its SPKI hash), a plain http server for web/, and Debian's Chromium via playwright-core.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { before, after } from 'node:test';
import { createServer as createHttps } from 'node:https';
import { createServer as createHttp } from 'node:http';
import { X509Certificate, createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname, normalize, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const WEB = normalize(join(here, '..'));
export const EMBED = normalize(join(here, '..', '..', 'src', 'sim', 'embed'));
export const OUT = join(here, '..', 'test', 'out');
export const CHROMIUM = process.env.PBIKIOSK_CHROMIUM || '/usr/bin/chromium';

// Content the fake Power BI knows about (what the Rust simulator's /_sim/embed-info will answer).
export const CATALOG = {
  'r-sales': {
    name: 'Sales Overview', kind: 'report', mobileLayout: true, pages: [
      { name: 'ReportSection1', displayName: 'Overview', order: 0 },
      { name: 'ReportSection2', displayName: 'Sales by Region', order: 1 },
      { name: 'ReportSection3', displayName: 'Monthly Trend', order: 2 }
    ]
  },
  'r-ops': {
    name: 'Operations Floor', kind: 'report', pages: [
      { name: 'OpsSection1', displayName: 'Line Status', order: 0 },
      { name: 'OpsSection2', displayName: 'Shift Output', order: 1 }
    ],
    bookmarks: [
      { name: 'BookmarkNight', displayName: 'Night shift', page: 'OpsSection2' },
      { name: 'BookmarkDay', displayName: 'Day shift' }
    ]
  },
  'd-exec': { name: 'Executive Dashboard', kind: 'dashboard', pages: [] }
};

function makeCert(dir) {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=app.powerbi.com',
    '-addext', 'subjectAltName=DNS:app.powerbi.com'], { stdio: 'pipe' });
  const pem = readFileSync(cert);
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { key: readFileSync(key), cert: pem, spkiHash: createHash('sha256').update(spki).digest('base64') };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.txt': 'text/plain; charset=utf-8' };

function sendFile(res, file) {
  if (!existsSync(file)) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found'); return; }
  res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
  res.end(readFileSync(file));
}

function readBody(req) {
  return new Promise((resolve) => { let b = ''; req.setEncoding('utf8'); req.on('data', (c) => { b += c; }); req.on('end', () => resolve(b)); });
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/** options.simEndpoints=false: no /_sim/* endpoints (as from a plain static server). */
export async function startServers(options = {}) {
  const simEndpoints = options.simEndpoints !== false;
  const dir = mkdtempSync(join(tmpdir(), 'pbikiosk-web-test-'));
  const tls = makeCert(dir);
  const requests = []; // every path the fake Power BI served (the test checks no token ever went into a URL)
  const bookmarks = []; // what the embed page told /_sim/bookmark-applied: {name, known}

  const powerbi = createHttps({ key: tls.key, cert: tls.cert }, async (req, res) => {
    const url = new URL(req.url, 'https://app.powerbi.com');
    requests.push(req.method + ' ' + req.url);
    if (url.pathname === '/reportEmbed' || url.pathname === '/dashboardEmbed') return sendFile(res, join(EMBED, 'embed.html'));
    if (url.pathname === '/sim-embed.js') {
      // Playwright's Chromium contexts are incognito, and Chromium blocks third-party cookies
      // there by design (no switch lifts it), so the fake embed page's storage check is off in
      // these page-protocol tests; the end-to-end tests run it in the player's own web view.
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      res.end('var PBISIM_STORAGE_CHECK = false;\n' + readFileSync(join(EMBED, 'embed.js'), 'utf8'));
      return;
    }
    if (simEndpoints && url.pathname === '/_sim/embed-info') {
      const id = url.searchParams.get('reportId') || url.searchParams.get('dashboardId');
      const info = CATALOG[id];
      res.writeHead(info ? 200 : 404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(info || { error: 'unknown' }));
    }
    if (simEndpoints && url.pathname === '/_sim/bookmark-applied' && req.method === 'POST') {
      bookmarks.push(JSON.parse(await readBody(req)));
      res.writeHead(204);
      return res.end();
    }
    if (simEndpoints && url.pathname === '/_sim/check-token' && req.method === 'POST') {
      const token = await readBody(req);
      const expired = token.startsWith('expired');
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ valid: !expired && token.length > 0, expired }));
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  const powerbiPort = await listen(powerbi);

  const web = createHttp((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    let p = decodeURIComponent(url.pathname);
    if (p === '/') p = '/index.html';
    const file = normalize(join(WEB, p));
    const top = file.slice(WEB.length + 1).split('/')[0];
    if (!file.startsWith(WEB + '/') || ['node_modules', 'test', 'testing'].includes(top)) {
      res.writeHead(403); return res.end();
    }
    sendFile(res, file);
  });
  const webPort = await listen(web);

  return {
    powerbiPort, webPort, spkiHash: tls.spkiHash, requests, bookmarks,
    pageUrl: `http://127.0.0.1:${webPort}/index.html`,
    async close() {
      await Promise.all([new Promise((r) => powerbi.close(r)), new Promise((r) => web.close(r))]);
      powerbi.closeAllConnections?.(); web.closeAllConnections?.();
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

export async function launchChromium(servers) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run',
      `--host-resolver-rules=MAP app.powerbi.com 127.0.0.1:${servers.powerbiPort}`,
      `--ignore-certificate-errors-spki-list=${servers.spkiHash}`
    ]
  });
}

/** The servers and a Chromium for one test file: started before its tests, closed after them. */
export function serversAndBrowser() {
  const env = {};
  before(async () => {
    mkdirSync(OUT, { recursive: true });
    env.servers = await startServers();
    env.browser = await launchChromium(env.servers);
  });
  after(async () => {
    await env.browser?.close();
    await env.servers?.close();
  });
  return env;
}

export function embedUrl(kind, id, groupId = 'g-signage') {
  return kind === 'dashboard'
    ? `https://app.powerbi.com/dashboardEmbed?dashboardId=${id}&groupId=${groupId}`
    : `https://app.powerbi.com/reportEmbed?reportId=${id}&groupId=${groupId}`;
}

/** Reads the page's outbox (messages to the core). */
export function outbox(page) {
  return page.evaluate(() => (window.__pbikioskOutbox || []).slice());
}

/** Waits until a message matching pred is in the outbox; returns it. */
export async function waitForMessage(page, pred, timeoutMs = 15000, what = 'message') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msgs = await outbox(page);
    const hit = msgs.find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; outbox: ${JSON.stringify(msgs.filter((m) => m.type !== 'heartbeat'))}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function send(page, msg) {
  return page.evaluate((m) => window.pbikiosk.receive(m), { v: 1, ...msg });
}

export function embedFrame(page, key) {
  return page.frameLocator(`.embed[data-key="${key}"] iframe`);
}
