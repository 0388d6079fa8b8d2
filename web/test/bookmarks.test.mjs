// Report bookmarks: what the player asks for (a bookmark in the load config) and the real powerbi-client's
// bookmarksManager, against the fake Power BI page (src/sim/embed/), which answers them as the service does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { serversAndBrowser, embedUrl, waitForMessage, send, embedFrame, outbox, OUT } from '../testing/harness.mjs';

const TOKEN = 'aad-token-BOOKMARK-0123456789-do-not-leak';

const env = serversAndBrowser();
let page;

function prepareMsg(key, bookmark) {
  return { type: 'prepare', key, kind: 'report', id: 'r-ops', group_id: 'g-signage', embed_url: embedUrl('report', 'r-ops'),
    access_token: TOKEN, token_type: 'aad', page: 'OpsSection1', bookmark };
}

/** What the embed `key` draws: its page, the bookmark label, the bookmark it marks itself with. */
async function drawn(key) {
  const frame = embedFrame(page, key);
  return {
    page: await frame.locator('#page').textContent(),
    label: await frame.locator('#bookmark').textContent(),
    bookmark: await frame.locator('#sim').getAttribute('data-bookmark')
  };
}

/** Waits for a message matching pred among those after the first n of the outbox. */
async function waitAfter(n, pred, what) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const hit = (await outbox(page)).slice(n).find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `fn(report)` in the page with the SDK's Report object of embed `key`; its result or {error}. */
function withReport(key, fn) {
  return page.evaluate(async ([key, src]) => {
    const report = window.powerbi.get(document.querySelector(`.embed[data-key="${key}"]`));
    try { return { ok: await (0, eval)('(' + src + ')')(report) }; } catch (e) { return { error: e }; }
  }, [key, fn.toString()]);
}

test('a bookmark in prepare opens its page with its label, as the player asks for it', async () => {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 720 } });
  page = await context.newPage();
  await page.goto(env.servers.pageUrl);
  await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');

  await send(page, prepareMsg('night', 'BookmarkNight'));
  await waitForMessage(page, (m) => m.type === 'rendered' && m.key === 'night', 15000, 'rendered');
  // The bookmark carries its own page, which wins over the page of the load config.
  const changed = await waitForMessage(page, (m) => m.type === 'page_changed' && m.key === 'night', 5000, 'page_changed');
  assert.equal(changed.page, 'OpsSection2');
  assert.deepEqual(await drawn('night'), { page: 'Shift Output', label: 'Night shift', bookmark: 'BookmarkNight' });
  assert.deepEqual(env.servers.bookmarks, [{ name: 'BookmarkNight', known: true }]);
  await send(page, { type: 'show', key: 'night' });
  await waitForMessage(page, (m) => m.type === 'shown' && m.key === 'night', 5000, 'shown');
  await page.screenshot({ path: join(OUT, 'bookmark-night.png') });
});

/** Wait (up to 5 s) until the simulator has heard of at least `n` bookmark requests. */
async function bookmarkRecords(n) {
  const until = Date.now() + 5000;
  while (env.servers.bookmarks.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
}

test('bookmarksManager: list, apply by name, unknown name refused, apply a captured state', async () => {
  const list = await withReport('night', (r) => r.bookmarksManager.getBookmarks());
  assert.deepEqual(list.ok.map((b) => [b.name, b.displayName]), [['BookmarkNight', 'Night shift'], ['BookmarkDay', 'Day shift']]);
  assert.ok(list.ok.every((b) => typeof b.state === 'string' && b.state.length > 0));

  const before = (await outbox(page)).length;
  const applied = await withReport('night', (r) => r.bookmarksManager.apply('BookmarkDay').then((res) => res.statusCode));
  assert.equal(applied.ok, 202);
  // Day shift names no page: it keeps the one on screen.
  await waitAfter(before, (m) => m.type === 'rendered' && m.key === 'night', 'rendered after apply');
  assert.deepEqual(await drawn('night'), { page: 'Shift Output', label: 'Day shift', bookmark: 'BookmarkDay' });
  assert.equal((await outbox(page)).slice(before).filter((m) => m.type === 'loaded').length, 0, 'apply must not reload');

  const unknown = await withReport('night', (r) => r.bookmarksManager.apply('BookmarkMisspelt'));
  assert.equal(unknown.error && unknown.error.message, 'BookmarkNotFound', JSON.stringify(unknown));
  assert.equal((await drawn('night')).bookmark, 'BookmarkDay', 'a refused name changes nothing');

  const night = list.ok.find((b) => b.name === 'BookmarkNight');
  const beforeState = (await outbox(page)).length;
  const byState = await withReport('night', new Function('r', `return r.bookmarksManager.applyState(${JSON.stringify(night.state)}).then((res) => res.statusCode);`));
  assert.equal(byState.ok, 202);
  // Day shift kept Shift Output on screen: the state's page is the same, so no page_changed, a new render.
  await waitAfter(beforeState, (m) => m.type === 'rendered' && m.key === 'night', 'rendered after applyState');
  assert.equal((await drawn('night')).bookmark, 'BookmarkNight');
  const badState = await withReport('night', (r) => r.bookmarksManager.applyState('bm90LWEtc3RhdGU='));
  assert.equal(badState.error && badState.error.message, 'BookmarkNotFound', JSON.stringify(badState));

  // The frame tells the simulator of each request without waiting for it: the last report can
  // come after the reply the test already has.
  await bookmarkRecords(5);
  assert.deepEqual(env.servers.bookmarks.slice(1), [
    { name: 'BookmarkDay', known: true }, { name: 'BookmarkMisspelt', known: false },
    { name: 'BookmarkNight', known: true }, { name: '(state)', known: false }
  ]);
});

test('a bookmark name the report lacks: the report opens on the asked page, plain, without an error', async () => {
  const n = (await outbox(page)).length;
  await send(page, prepareMsg('ghost', 'BookmarkGone'));
  await waitForMessage(page, (m) => m.type === 'rendered' && m.key === 'ghost', 15000, 'rendered');
  assert.deepEqual(await drawn('ghost'), { page: 'Line Status', label: '', bookmark: null });
  const after = (await outbox(page)).slice(n);
  assert.equal(after.filter((m) => m.type === 'error' || m.type === 'js_error').length, 0, JSON.stringify(after));
  await bookmarkRecords(6);
  assert.deepEqual(env.servers.bookmarks.at(-1), { name: 'BookmarkGone', known: false });
});
