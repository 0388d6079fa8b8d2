// Browser tests of web/ alone: the real powerbi-client (vendor/) in Debian's Chromium against the fake
// Power BI embed page (src/sim/embed/) served as https://app.powerbi.com on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  startServers, launchChromium, embedUrl, outbox, waitForMessage, send, embedFrame, OUT
} from '../testing/harness.mjs';

const TOKEN_A = 'aad-token-ALPHA-0123456789-do-not-leak';
const TOKEN_B = 'aad-token-BRAVO-9876543210-do-not-leak';
const TOKEN_EXPIRED = 'expired-token-CHARLIE-55555-do-not-leak';
const SECRETS = [TOKEN_A, TOKEN_B, TOKEN_EXPIRED];

let servers, browser, page;
const consoleLines = [];

before(async () => {
  mkdirSync(OUT, { recursive: true });
  servers = await startServers();
  browser = await launchChromium(servers);
  page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  await page.goto(servers.pageUrl);
  await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
});

after(async () => {
  await browser?.close();
  await servers?.close();
});

function prepareMsg(key, kind, id, token, extra = {}) {
  return { type: 'prepare', key, kind, id, group_id: 'g-signage', embed_url: embedUrl(kind, id),
    access_token: token, token_type: 'aad', page: null, bookmark: null, ...extra };
}

const count = (msgs, pred) => msgs.filter(pred).length;

/** Which embed (data-key) the audience sees at the centre of the screen, or what covers it. */
function visibleAt(x = 960, y = 540) {
  return page.evaluate(([x, y]) => {
    const e = document.elementFromPoint(x, y);
    const c = e && e.closest('.embed');
    return c ? c.getAttribute('data-key') : (e ? '#' + (e.closest('[id]') || e).id : null);
  }, [x, y]);
}

test('ready carries v:1 and the player version', async () => {
  const ready = (await outbox(page)).find((m) => m.type === 'ready');
  assert.equal(ready.v, 1);
  assert.equal(typeof ready.version, 'string');
});

test('prepare + show of a 3-page report: loaded, rendered, shown with a gap', async () => {
  await send(page, prepareMsg('sales', 'report', 'r-sales', TOKEN_A));
  await waitForMessage(page, (m) => m.type === 'loaded' && m.key === 'sales', 15000, 'loaded');
  const rendered = await waitForMessage(page, (m) => m.type === 'rendered' && m.key === 'sales', 15000, 'rendered');
  assert.equal(typeof rendered.ms, 'number');
  assert.ok(rendered.ms >= 0);
  console.log('first rendered after ' + rendered.ms + ' ms');

  // Prepared but not shown: laid out at full size, covered by the curtain.
  const box = await page.locator('.embed[data-key="sales"]').boundingBox();
  assert.equal(Math.round(box.width), 1920);
  assert.equal(Math.round(box.height), 1080);
  assert.equal(await page.locator('.embed[data-key="sales"]').getAttribute('class'), 'embed prepared');
  assert.equal(await visibleAt(), '#curtain', 'a prepared embed stays covered');

  await send(page, { type: 'show', key: 'sales' });
  const shown = await waitForMessage(page, (m) => m.type === 'shown' && m.key === 'sales', 5000, 'shown');
  assert.equal(typeof shown.gap_ms, 'number');
  assert.ok(shown.gap_ms >= 0 && shown.gap_ms < 1000, `gap_ms ${shown.gap_ms}`);
  assert.equal(await page.locator('.embed[data-key="sales"]').getAttribute('class'), 'embed active');
  assert.equal(await visibleAt(), 'sales');
  assert.equal(await visibleAt(5, 5), 'sales');
  assert.equal(await visibleAt(1915, 1075), 'sales');

  const frame = embedFrame(page, 'sales');
  assert.equal(await frame.locator('#name').textContent(), 'Sales Overview');
  assert.equal(await frame.locator('#page').textContent(), 'Overview');
  assert.match(await frame.locator('#clock').textContent(), /^\d\d:\d\d:\d\d$/);
  await page.screenshot({ path: join(OUT, 'report-page1.png') });
});

test('set_page → page_changed and the drawn page changes, without a reload', async () => {
  const loadedBefore = count(await outbox(page), (m) => m.type === 'loaded' && m.key === 'sales');
  await send(page, { type: 'set_page', key: 'sales', page: 'ReportSection2' });
  // (The embed also announced its opening page on load, like the service: wait for this one.)
  const changed = await waitForMessage(page, (m) => m.type === 'page_changed' && m.key === 'sales' && m.page === 'ReportSection2', 10000, 'page_changed');
  assert.equal(changed.display_name, 'Sales by Region');
  const frame = embedFrame(page, 'sales');
  assert.equal(await frame.locator('#page').textContent(), 'Sales by Region');
  assert.equal(count(await outbox(page), (m) => m.type === 'loaded' && m.key === 'sales'), loadedBefore);
  await page.screenshot({ path: join(OUT, 'report-page2.png') });
});

test('set_page to a page that does not exist reports an error, not a crash', async () => {
  await send(page, { type: 'set_page', key: 'sales', page: 'NoSuchSection' });
  const err = await waitForMessage(page, (m) => m.type === 'error' && m.key === 'sales' && m.message === 'SetPageFailed', 10000, 'SetPageFailed');
  assert.ok(err.detail);
});

test('set_token → token_applied ok on every live embed, without a new loaded', async () => {
  await send(page, prepareMsg('ops', 'report', 'r-ops', TOKEN_A, { page: 'OpsSection2' }));
  await waitForMessage(page, (m) => m.type === 'rendered' && m.key === 'ops', 15000, 'ops rendered');
  assert.equal(await embedFrame(page, 'ops').locator('#page').textContent(), 'Shift Output');
  const before = await outbox(page);
  const loadedBefore = count(before, (m) => m.type === 'loaded');
  const n = before.length;

  await send(page, { type: 'set_token', access_token: TOKEN_B });
  const sales = await waitForMessage(page, (m) => m.type === 'token_applied' && m.key === 'sales', 10000, 'token_applied sales');
  const ops = await waitForMessage(page, (m) => m.type === 'token_applied' && m.key === 'ops', 10000, 'token_applied ops');
  assert.equal(sales.ok, true);
  assert.equal(ops.ok, true);
  await new Promise((r) => setTimeout(r, 500));
  const afterMsgs = (await outbox(page)).slice(n);
  assert.equal(count(afterMsgs, (m) => m.type === 'loaded'), 0, 'set_token must not reload');
  assert.equal(count(await outbox(page), (m) => m.type === 'loaded'), loadedBefore);
  // The page shown is still the one from before.
  assert.equal(await embedFrame(page, 'sales').locator('#page').textContent(), 'Sales by Region');
});

test('set_token with a key reaches that embed only (a dashboard\'s own embed token)', async () => {
  const n = (await outbox(page)).length;
  await send(page, { type: 'set_token', key: 'ops', access_token: TOKEN_A });
  const ops = await waitForMessage(page, (m, i) => i >= n && m.type === 'token_applied' && m.key === 'ops', 10000, 'token_applied ops');
  assert.equal(ops.ok, true);
  await new Promise((r) => setTimeout(r, 500));
  const afterMsgs = (await outbox(page)).slice(n);
  assert.equal(count(afterMsgs, (m) => m.type === 'token_applied'), 1, JSON.stringify(afterMsgs.map((m) => m.type + ':' + m.key)));
  assert.equal(count(afterMsgs, (m) => m.type === 'loaded'), 0, 'set_token must not reload');
  // A key the page does not hold reaches nothing.
  const m = (await outbox(page)).length;
  await send(page, { type: 'set_token', key: 'nope', access_token: TOKEN_A });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(count((await outbox(page)).slice(m), (x) => x.type === 'token_applied'), 0);
});

test('switching between two rendered reports reports a small gap and swaps the layers', async () => {
  await send(page, { type: 'show', key: 'ops' });
  const shown = await waitForMessage(page, (m) => m.type === 'shown' && m.key === 'ops', 5000, 'shown ops');
  assert.ok(shown.gap_ms > 0 && shown.gap_ms < 200, `gap_ms ${shown.gap_ms}`);
  console.log('switch gap ' + shown.gap_ms + ' ms');
  assert.equal(await page.locator('.embed[data-key="ops"]').getAttribute('class'), 'embed active');
  assert.equal(await page.locator('.embed[data-key="sales"]').getAttribute('class'), 'embed prepared');
  assert.equal(await visibleAt(), 'ops');
  await page.screenshot({ path: join(OUT, 'report-ops.png') });
});

test('show then discard of the old item in one batch: the old one stays on screen until the swap', async () => {
  // What the core sends at an item switch: show the new one, discard the old one, prepare the next.
  const n = (await outbox(page)).length;
  const res = await page.evaluate(() => {
    const k = window.pbikiosk;
    k.receive({ v: 1, type: 'show', key: 'sales' });
    k.receive({ v: 1, type: 'discard', key: 'ops' });
    // Right after the batch, before any frame: the old report must still be there, on top.
    const ops = document.querySelector('.embed[data-key="ops"]');
    return { opsThere: !!ops, opsClass: ops && ops.className };
  });
  assert.deepEqual(res, { opsThere: true, opsClass: 'embed active' });
  const shown = await waitForMessage(page, (m, i) => i >= n && m.type === 'shown' && m.key === 'sales', 5000, 'shown sales');
  assert.ok(shown.gap_ms > 0 && shown.gap_ms < 200, `gap_ms ${shown.gap_ms}`);
  const deadline = Date.now() + 2000;
  while (await page.locator('.embed[data-key="ops"]').count() !== 0) {
    assert.ok(Date.now() < deadline, 'the old embed is discarded after the swap');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await visibleAt(), 'sales');
  // Put ops back for the tests below.
  const n1 = (await outbox(page)).length;
  await send(page, prepareMsg('ops', 'report', 'r-ops', TOKEN_B, { page: 'OpsSection2' }));
  await waitForMessage(page, (m, i) => i >= n1 && m.type === 'rendered' && m.key === 'ops', 15000, 'ops rendered again');
  const n2 = (await outbox(page)).length;
  await send(page, { type: 'show', key: 'ops' });
  await waitForMessage(page, (m, i) => i >= n2 && m.type === 'shown' && m.key === 'ops', 5000, 'shown ops');
});

test('an expired token yields error TokenExpired', async () => {
  await send(page, prepareMsg('stale', 'report', 'r-sales', TOKEN_EXPIRED));
  const err = await waitForMessage(page, (m) => m.type === 'error' && m.key === 'stale', 15000, 'error');
  assert.equal(err.message, 'TokenExpired');
  assert.equal(err.detail.message, 'TokenExpired');
  assert.equal(count(await outbox(page), (m) => m.type === 'loaded' && m.key === 'stale'), 0);
});

test('set_token with an expired token: token_applied ok:false with the reason', async () => {
  const n = (await outbox(page)).length;
  await send(page, { type: 'set_token', access_token: TOKEN_EXPIRED });
  const t = await waitForMessage(page, (m, i) => m.type === 'token_applied' && m.key === 'sales' && m.ok === false, 10000, 'token_applied false');
  assert.match(t.error, /TokenExpired/);
  assert.ok((await outbox(page)).length > n);
  await send(page, { type: 'set_token', access_token: TOKEN_B }); // put a good one back
  await waitForMessage(page, (m) => m.type === 'token_applied' && m.key === 'ops' && m.ok === true, 10000);
});

test('discard removes the embed; refresh and reload answer', async () => {
  await send(page, { type: 'discard', key: 'stale' });
  assert.equal(await page.locator('.embed[data-key="stale"]').count(), 0);
  const n = (await outbox(page)).length;
  await send(page, { type: 'refresh', key: 'ops' });
  await waitForMessage(page, (m) => false || (m.type === 'rendered' && m.key === 'ops'), 1, '').catch(() => {});
  const loadedOps = count(await outbox(page), (m) => m.type === 'loaded' && m.key === 'ops');
  await send(page, { type: 'reload', key: 'ops' });
  const deadline = Date.now() + 10000;
  while (count(await outbox(page), (m) => m.type === 'loaded' && m.key === 'ops') === loadedOps) {
    assert.ok(Date.now() < deadline, 'reload must produce a new loaded');
    await new Promise((r) => setTimeout(r, 50));
  }
  const errors = (await outbox(page)).slice(n).filter((m) => m.type === 'error' || m.type === 'js_error');
  assert.deepEqual(errors, []);
  await send(page, { type: 'show', key: 'nope' });
  await waitForMessage(page, (m) => m.type === 'error' && m.key === 'nope' && m.message === 'UnknownKey', 2000);
});

test('a dashboard embeds and renders', async () => {
  await send(page, prepareMsg('exec', 'dashboard', 'd-exec', TOKEN_B));
  await waitForMessage(page, (m) => m.type === 'rendered' && m.key === 'exec', 15000, 'dashboard rendered');
  await send(page, { type: 'show', key: 'exec' });
  await waitForMessage(page, (m) => m.type === 'shown' && m.key === 'exec', 5000);
  assert.equal(await embedFrame(page, 'exec').locator('#name').textContent(), 'Executive Dashboard');
  assert.equal(await embedFrame(page, 'exec').locator('.tile').count(), 6);
  await page.screenshot({ path: join(OUT, 'dashboard.png') });
  // Only a `shown` sent after this show counts: an earlier test's `shown` for sales is still in
  // the outbox, and matching it let the next test look before the swap back had happened.
  const sent = (await outbox(page)).length;
  await send(page, { type: 'show', key: 'sales' });
  await waitForMessage(page, (m, i) => i >= sent && m.type === 'shown' && m.key === 'sales' && m.gap_ms > 0, 5000);
});

test('badge shows over the report without hiding it', async () => {
  await send(page, { type: 'badge', text: 'Offline since 14:02' });
  const badge = page.locator('#badge');
  assert.equal(await badge.isVisible(), true);
  assert.equal(await badge.textContent(), 'Offline since 14:02');
  assert.equal(await page.locator('.embed[data-key="sales"]').getAttribute('class'), 'embed active');
  assert.equal(await visibleAt(), 'sales');
  await page.screenshot({ path: join(OUT, 'report-badge.png') });
  await send(page, { type: 'badge', text: null });
  assert.equal(await badge.isVisible(), false);
});

test('status screen shows title, cause, fix and facts; hide_status hides it', async () => {
  await send(page, { type: 'status', screen: {
    problem: 'invalid_credentials',
    title: 'Cannot sign in to Power BI',
    cause: 'Microsoft rejected the password of the kiosk account.',
    fix: 'Update the password in /etc/pbikiosk/secrets and restart the kiosk.',
    facts: [['Account', 'kiosk@contoso.com'], ['Error code', 'AADSTS50126'], ['Trace id', '0f3c1b2a-9d7e-4c1a-8f00-3b2e1d0c9a87'], ['Screen', 'Lobby TV']],
    next_attempt: '14:35'
  } });
  const status = page.locator('#status');
  assert.equal(await status.isVisible(), true);
  assert.equal(await visibleAt(5, 5), '#status', 'the status screen covers everything');
  assert.equal(await page.locator('#status-title').textContent(), 'Cannot sign in to Power BI');
  assert.equal(await page.locator('#status-cause').textContent(), 'Microsoft rejected the password of the kiosk account.');
  assert.equal(await page.locator('#status-fix').textContent(), 'Update the password in /etc/pbikiosk/secrets and restart the kiosk.');
  assert.equal(await page.locator('#status-facts tr').count(), 4);
  assert.match(await page.locator('#status-next').textContent(), /14:35/);
  // Readable from 5 m: the title is big on a 1080p screen.
  const px = await page.locator('#status-title').evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
  assert.ok(px >= 80, `title font ${px}px`);
  await page.screenshot({ path: join(OUT, 'status.png') });

  await send(page, { type: 'status', screen: {
    problem: 'not_configured', title: 'This screen is not set up yet',
    cause: 'No Power BI account or report is configured.',
    fix: 'Run `sudo pbikiosk setup` or edit /etc/pbikiosk/pbikiosk.toml.',
    facts: [['Host name', 'kiosk-lobby'], ['Address', '192.0.2.10']]
  } });
  assert.equal(await status.getAttribute('data-tone'), 'setup');
  assert.equal(await page.locator('#status-next').isVisible(), false);
  await page.screenshot({ path: join(OUT, 'status-not-configured.png') });

  // Long texts stay on the screen (shrunk to fit, clamped only as a last resort), nothing runs off the bottom.
  const long = 'The token endpoint answered with an error this kiosk does not know yet, so it is shown as it came. '.repeat(4);
  await send(page, { type: 'status', screen: {
    problem: 'unknown', title: 'Power BI answered with an unexpected error while signing in the kiosk account', cause: long, fix: long,
    facts: [['Code', 'AADSTS9999999'], ['Trace id', 'x'.repeat(120)]], next_attempt: '2026-11-26T14:35:00Z'
  } });
  const bottom = await page.locator('.status-body').evaluate((e) => e.getBoundingClientRect().bottom);
  assert.ok(bottom <= 1080, `status body ends at ${bottom}px`);
  await page.screenshot({ path: join(OUT, 'status-long.png') });

  await send(page, { type: 'hide_status' });
  assert.equal(await status.isVisible(), false);
  assert.equal(await visibleAt(), 'sales');
});

test('invalid core messages are reported as js_error and change nothing', async () => {
  const n = (await outbox(page)).length;
  assert.equal(await send(page, { type: 'show' }), false);
  assert.equal(await page.evaluate(() => window.pbikiosk.receive({ v: 2, type: 'show', key: 'sales' })), false);
  assert.equal(await send(page, { type: 'prepare', key: 'x', kind: 'report', id: 'r', embed_url: 'https://app.powerbi.com/reportEmbed', access_token: TOKEN_A, token_type: 'bearer' }), false);
  const errs = (await outbox(page)).slice(n).filter((m) => m.type === 'js_error');
  assert.equal(errs.length, 3);
  assert.equal(await page.locator('.embed[data-key="sales"]').getAttribute('class'), 'embed active');
});

test('a page error is reported as js_error', async () => {
  await page.evaluate(() => { setTimeout(() => { throw new Error('boom from test'); }, 0); });
  await waitForMessage(page, (m) => m.type === 'js_error' && /boom from test/.test(m.message), 3000);
  await page.evaluate(() => { Promise.reject(new Error('rejected in test')); });
  await waitForMessage(page, (m) => m.type === 'js_error' && /rejected in test/.test(m.message), 3000);
});

test('heartbeat every 5 s with t = performance.now()', async () => {
  const hb = await waitForMessage(page, (m) => m.type === 'heartbeat', 7000, 'heartbeat');
  assert.equal(typeof hb.t, 'number');
});

test('discarded embeds are freed: DOM nodes and listeners stay flat over 24 switches', async () => {
  // Guards the powerbi-client router leak worked around in player.js (guardRouterLeak): without
  // it every discarded report keeps its container, iframe and one listener alive.
  const cdp = await page.context().newCDPSession(page);
  const ids = ['r-sales', 'r-ops', 'r-cs'];
  let prev = null;
  async function cycle(from, to) {
    for (let i = from; i < to; i++) {
      const key = 'leak' + i;
      await send(page, prepareMsg(key, 'report', ids[i % 3], TOKEN_A));
      await waitForMessage(page, (m) => m.type === 'rendered' && m.key === key, 15000, 'rendered ' + key);
      await send(page, { type: 'show', key });
      await waitForMessage(page, (m) => m.type === 'shown' && m.key === key, 5000, 'shown ' + key);
      if (prev) await send(page, { type: 'discard', key: prev });
      prev = key;
    }
    await new Promise((r) => setTimeout(r, 300));
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('HeapProfiler.collectGarbage');
    return cdp.send('Memory.getDOMCounters');
  }
  const warm = await cycle(0, 4);
  const after = await cycle(4, 28);
  console.log(`DOM counters after 4 / 28 switches: ${JSON.stringify(warm)} / ${JSON.stringify(after)}`);
  assert.ok(after.jsEventListeners <= warm.jsEventListeners + 2,
    `listeners grew ${warm.jsEventListeners} -> ${after.jsEventListeners}`);
  assert.ok(after.nodes <= warm.nodes + 20, `DOM nodes grew ${warm.nodes} -> ${after.nodes}`);
  const hookRoutes = await page.evaluate(() => window.powerbi.wpmp.handlers.length);
  assert.ok(hookRoutes < 20, `${hookRoutes} router handlers`);
  await send(page, { type: 'discard', key: prev });
  await cdp.detach();
});

test('no access token appears in page text, DOM, console, messages or request URLs', async () => {
  const texts = [];
  texts.push(await page.evaluate(() => document.documentElement.outerHTML));
  texts.push(await page.evaluate(() => document.body.innerText));
  for (const f of page.frames()) {
    texts.push(await f.evaluate(() => document.documentElement.outerHTML).catch(() => ''));
  }
  texts.push(JSON.stringify(await outbox(page)));
  texts.push(consoleLines.join('\n'));
  texts.push(servers.requests.join('\n'));
  const all = texts.join('\n');
  for (const s of SECRETS) assert.ok(!all.includes(s), 'a token leaked');
  assert.ok(all.includes('Sales Overview')); // sanity: we did look at real content
});
