// The page's authenticated channel to the core (web/channel.js), as the core injects it.
//
// fixtures/channel.json is written by the core's own test (src/page_gate.rs): the script with a
// fixed secret, a message, and the envelope the core accepts for it. Here the script runs (in a
// vm, then in Chromium ahead of the real page) and must send exactly that envelope, hand its
// sender out once, and leave the secret nowhere a later script could read it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { startServers, launchChromium, OUT } from '../testing/harness.mjs';

const read = (rel) => readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8');
const fixture = JSON.parse(read('./fixtures/channel.json'));

/** The script run in a fresh global, with (or without) WebKit's IPC handler. */
function injected(withHandler = true) {
  const posted = [];
  const ctx = vm.createContext({});
  vm.runInContext('globalThis.window = globalThis;', ctx);
  if (withHandler) ctx.webkit = { messageHandlers: { ipc: { postMessage: (s) => posted.push(s) } } };
  vm.runInContext(fixture.script, ctx);
  return { ctx, posted };
}

test('the script carries the secret and sends the envelope the core accepts', () => {
  assert.match(fixture.secret, /^[0-9a-f]{32}$/);
  assert.ok(fixture.script.includes("'" + fixture.secret + "'"));
  const { ctx, posted } = injected();
  const send = vm.runInContext('window.__pbikioskChannel()', ctx);
  send(JSON.parse(JSON.stringify(fixture.message)));
  assert.equal(posted.length, 1);
  assert.equal(typeof posted[0], 'string', 'wry takes strings');
  assert.deepEqual(JSON.parse(posted[0]), JSON.parse(fixture.wire));
});

test('the sender is handed out once, and the secret is left in no global', () => {
  const { ctx, posted } = injected();
  vm.runInContext('var first = window.__pbikioskChannel();', ctx);
  assert.equal(vm.runInContext('typeof window.__pbikioskChannel', ctx), 'undefined');
  assert.equal(vm.runInContext("'__pbikioskChannel' in window", ctx), false);
  const globals = vm.runInContext('Object.getOwnPropertyNames(window).map(function (k) { try { return String(window[k]); } catch (e) { return ""; } }).join("\\n")', ctx);
  assert.ok(!globals.includes(fixture.secret), 'a global holds the secret');
  // The sender's own source does not give it away either.
  assert.ok(!vm.runInContext('String(first)', ctx).includes(fixture.secret));
  // A script that replaces JSON.stringify afterwards does not get to see it.
  vm.runInContext('var seen = []; JSON.stringify = function (x) { seen.push(x); return "{}"; };', ctx);
  vm.runInContext('first({ v: 1, type: "heartbeat", t: 1 })', ctx);
  assert.equal(vm.runInContext('seen.length', ctx), 0);
  assert.equal(JSON.parse(posted[0]).auth, fixture.secret);
});

test('without WebKit\'s IPC handler (a plain browser) the script defines nothing', () => {
  const { ctx } = injected(false);
  assert.equal(vm.runInContext('typeof window.__pbikioskChannel', ctx), 'undefined');
});

// The real page in Chromium, the channel injected ahead of it in the top frame only (as WebKit's
// TopFrame user script): every message goes through it, and the page leaves nothing behind.
let servers, browser;
before(async () => {
  mkdirSync(OUT, { recursive: true });
  servers = await startServers({ simEndpoints: false });
  browser = await launchChromium(servers);
});
after(async () => {
  await browser?.close();
  await servers?.close();
});

test('player.js takes the channel and sends every message through it', async () => {
  const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
  await page.addInitScript((script) => {
    if (window !== window.top) return;
    window.__posted = [];
    window.webkit = { messageHandlers: { ipc: { postMessage: (s) => window.__posted.push(s) } } };
    (0, eval)(script);
  }, fixture.script);
  await page.goto(servers.pageUrl);
  const end = Date.now() + 15000;
  let posted = [];
  while (Date.now() < end) {
    posted = await page.evaluate(() => window.__posted.slice());
    if (posted.some((s) => JSON.parse(s).message.type === 'ready')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(posted.length > 0, 'nothing posted');
  for (const s of posted) {
    const env = JSON.parse(s);
    assert.equal(env.auth, fixture.secret);
    assert.equal(env.message.v, 1);
  }
  assert.ok(posted.some((s) => JSON.parse(s).message.type === 'ready'));
  assert.equal(await page.evaluate(() => typeof window.__pbikioskChannel), 'undefined');
  assert.equal(await page.evaluate(() => window.__pbikioskOutbox === undefined), true, 'nothing went to the outbox');
  await page.close();
});
