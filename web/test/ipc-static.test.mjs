// The page talking through wry's window.ipc (JSON strings), and the fake embed from a plain static server
// (no /_sim endpoints): placeholder metadata, every token accepted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { startServers, launchChromium, embedUrl, embedFrame, OUT } from '../testing/harness.mjs';

const TOKEN = 'expired-but-nobody-checks-0123456789';
let servers, browser, page;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  servers = await startServers({ simEndpoints: false });
  browser = await launchChromium(servers);
  page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  // What wry injects: window.ipc.postMessage(string).
  await page.addInitScript(() => {
    window.__ipcSeen = [];
    window.ipc = { postMessage: (s) => window.__ipcSeen.push(s) };
  });
  await page.goto(servers.pageUrl);
});

after(async () => {
  await browser?.close();
  await servers?.close();
});

async function ipcMessages() {
  const raw = await page.evaluate(() => window.__ipcSeen.slice());
  for (const s of raw) assert.equal(typeof s, 'string');
  return raw.map((s) => JSON.parse(s));
}

async function waitIpc(pred, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const hit = (await ipcMessages()).find(pred);
    if (hit) return hit;
    if (Date.now() > end) throw new Error('timeout; seen ' + JSON.stringify(await ipcMessages()));
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('messages go to window.ipc as JSON strings, not to the outbox', async () => {
  const ready = await waitIpc((m) => m.type === 'ready');
  assert.equal(ready.v, 1);
  assert.equal(await page.evaluate(() => window.__pbikioskOutbox === undefined), true);
});

test('without /_sim endpoints the fake embed draws placeholder metadata and accepts the token', async () => {
  await page.evaluate((m) => window.pbikiosk.receive(m), {
    v: 1, type: 'prepare', key: 'k', kind: 'report', id: 'r-unknown-0001', group_id: 'g',
    embed_url: embedUrl('report', 'r-unknown-0001', 'g'), access_token: TOKEN, token_type: 'embed'
  });
  await waitIpc((m) => m.type === 'loaded' && m.key === 'k');
  await waitIpc((m) => m.type === 'rendered' && m.key === 'k');
  await page.evaluate(() => window.pbikiosk.receive({ v: 1, type: 'show', key: 'k' }));
  await waitIpc((m) => m.type === 'shown' && m.key === 'k');
  assert.equal(await embedFrame(page, 'k').locator('#name').textContent(), 'Report r-unknown-0001');
  assert.equal(await embedFrame(page, 'k').locator('#page').textContent(), 'Page 1');
  await page.evaluate(() => window.pbikiosk.receive({ v: 1, type: 'set_page', key: 'k', page: 'ReportSection3' }));
  // The opening page was announced on load; the change to page 3 comes after it.
  const opened = await waitIpc((m) => m.type === 'page_changed' && m.key === 'k');
  assert.equal(opened.page, 'ReportSection1');
  const changed = await waitIpc((m) => m.type === 'page_changed' && m.key === 'k' && m.page === 'ReportSection3');
  assert.equal(changed.page, 'ReportSection3');
  assert.equal(await embedFrame(page, 'k').locator('#page').textContent(), 'Page 3');
  await page.screenshot({ path: join(OUT, 'static-placeholder.png') });
  const all = JSON.stringify(await ipcMessages()) + await page.evaluate(() => document.documentElement.outerHTML);
  assert.ok(!all.includes(TOKEN));
});
