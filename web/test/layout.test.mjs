// Report layouts on portrait and landscape screens: the settings the real powerbi-client sends for each
// `report_layout`, and what the fake Power BI page draws with them (a report with a mobile layout and one
// without, src/sim/embed/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { serversAndBrowser, embedUrl, waitForMessage, send, embedFrame, OUT } from '../testing/harness.mjs';

const TOKEN = 'aad-token-LAYOUT-0123456789-do-not-leak';
// models.LayoutType / models.DisplayOption values on the wire.
const CUSTOM = 1, MOBILE_PORTRAIT = 2, FIT_TO_PAGE = 0, FIT_TO_WIDTH = 1;

const env = serversAndBrowser();

async function openPage(width, height) {
  const context = await env.browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  await page.goto(env.servers.pageUrl);
  await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
  // Every embed the page asks of the SDK, with the settings the SDK posts in its report/load (the embed
  // page draws from what arrives, which the tests check too).
  await page.evaluate(() => {
    window.__loads = [];
    const service = window.powerbi;
    const embed = service.embed;
    service.embed = function (element, config) {
      const result = embed.apply(this, arguments);
      const iframe = element.querySelector('iframe');
      window.__loads.push({ key: element.getAttribute('data-key'), settings: JSON.parse(JSON.stringify(config.settings || {})),
        src: iframe ? iframe.src : '' });
      return result;
    };
  });
  return { context, page };
}

async function prepareAndShow(page, key, id, reportLayout) {
  await send(page, { type: 'prepare', key, kind: 'report', id, group_id: 'g-signage', embed_url: embedUrl('report', id),
    access_token: TOKEN, token_type: 'aad', page: null, bookmark: null, report_layout: reportLayout });
  await waitForMessage(page, (m) => m.type === 'rendered' && m.key === key, 20000, 'rendered ' + key);
  await send(page, { type: 'show', key });
  await waitForMessage(page, (m) => m.type === 'shown' && m.key === key, 5000, 'shown ' + key);
  const loads = await page.evaluate((key) => window.__loads.filter((l) => l.key === key), key);
  const drawn = await embedFrame(page, key).locator('#sim').getAttribute('data-layout');
  const label = await embedFrame(page, key).locator('#layout').textContent();
  const container = await page.locator(`.embed[data-key="${key}"]`).getAttribute('data-layout');
  const rendered = (await page.evaluate(() => window.__pbikioskOutbox.slice()))
    .filter((m) => m.type === 'rendered' && m.key === key).length;
  return { loads, drawn, label, container, rendered };
}

test('1080x1920, auto: the mobile layout of a report that has one, fit to width for one that has not', async () => {
  const { context, page } = await openPage(1080, 1920);
  try {
    const sales = await prepareAndShow(page, 'sales', 'r-sales', 'auto');
    assert.equal(sales.loads.length, 1, 'embedded once');
    assert.equal(sales.loads[0].settings.layoutType, MOBILE_PORTRAIT);
    assert.match(sales.loads[0].src, /[?&]isMobile=true/);
    assert.equal(sales.drawn, 'mobile');
    assert.equal(sales.label, 'Mobile layout');
    assert.equal(sales.container, 'mobile');
    assert.equal(sales.rendered, 1);
    await page.screenshot({ path: join(OUT, 'layout-mobile-1080x1920.png') });

    const ops = await prepareAndShow(page, 'ops', 'r-ops', 'auto');
    // Tried in its mobile layout, which it has not, then embedded again fitted to the width.
    assert.deepEqual(ops.loads.map((l) => l.settings.layoutType), [MOBILE_PORTRAIT, CUSTOM]);
    assert.equal(ops.loads[1].settings.customLayout.displayOption, FIT_TO_WIDTH);
    assert.doesNotMatch(ops.loads[1].src, /isMobile/);
    assert.equal(ops.drawn, 'fit-width');
    assert.equal(ops.container, 'fit-width');
    assert.equal(ops.rendered, 1, 'the trial embed never reported rendered');
    await page.screenshot({ path: join(OUT, 'layout-fit-width-1080x1920.png') });
  } finally {
    await context.close();
  }
});

test('1080x1920: landscape and fit_width keep the normal layout; 1920x1080: auto is the whole page, portrait the mobile one', async () => {
  const tall = await openPage(1080, 1920);
  try {
    const l = await prepareAndShow(tall.page, 'a', 'r-sales', 'landscape');
    assert.equal(l.loads.length, 1);
    assert.equal(l.loads[0].settings.layoutType, CUSTOM);
    assert.equal(l.loads[0].settings.customLayout.displayOption, FIT_TO_PAGE);
    assert.equal(l.drawn, 'page');
    const w = await prepareAndShow(tall.page, 'b', 'r-sales', 'fit_width');
    assert.equal(w.loads.length, 1);
    assert.equal(w.loads[0].settings.customLayout.displayOption, FIT_TO_WIDTH);
    assert.equal(w.drawn, 'fit-width');
  } finally {
    await tall.context.close();
  }
  const wide = await openPage(1920, 1080);
  try {
    const a = await prepareAndShow(wide.page, 'a', 'r-sales', 'auto');
    assert.equal(a.loads.length, 1);
    assert.equal(a.loads[0].settings.layoutType, CUSTOM);
    assert.equal(a.loads[0].settings.customLayout.displayOption, FIT_TO_PAGE);
    assert.equal(a.drawn, 'page');
    const p = await prepareAndShow(wide.page, 'b', 'r-sales', 'portrait');
    assert.equal(p.loads.length, 1);
    assert.equal(p.loads[0].settings.layoutType, MOBILE_PORTRAIT);
    assert.equal(p.drawn, 'mobile');
  } finally {
    await wide.context.close();
  }
});
