// The page's full-screen screens at the sizes kiosks run at: the status screen with the longest texts the
// core writes (landscape and portrait), the badge, and the start screen shown before the first item.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { serversAndBrowser, embedUrl, waitForMessage, send, OUT } from '../testing/harness.mjs';

const SIZES = [[1280, 720], [1920, 1080], [3840, 2160], [1080, 1920]];

// As the core builds it (src/bridge.rs `Screen`, filled in by the player): the device facts, then the
// problem's own, then the configuration path. Texts as long as the core's longest, the fix longer.
const LONG_SCREEN = {
  problem: 'consent_required',
  title: 'The account requires multi-factor authentication',
  cause: 'The tenant id or domain is unknown to Microsoft (typo, or a national cloud tenant used against the public cloud); the token endpoint answered AADSTS90002.',
  fix: 'In the Azure portal > App registrations > API permissions, add the Power BI Service delegated permissions (Report.Read.All, Dashboard.Read.All, Workspace.Read.All) and grant admin consent for the tenant. Then search the trace id below in Entra ID > Sign-in logs to confirm that the next sign-in succeeds.',
  facts: [
    ['Device', 'kiosk-lobby-reception-building-b-floor-2'],
    ['IP address', '192.168.110.57, 10.20.0.4, fd12:3456:789a:1:2a0:c9ff:fe12:3456'],
    ['pbikiosk', '0.1.0'],
    ['Time on device', '2026-11-26 14:05'],
    ['Problem', 'consent_required'],
    ['Microsoft code', 'AADSTS65001, AADSTS90002'],
    ['Trace ID', '0f3c1b2a-9d7e-4c1a-8f00-3b2e1d0c9a87'],
    ['Correlation ID', '7d1e5a90-44b2-4f3e-9c1d-2b8a6f0e3c54'],
    ['Configuration', '/etc/pbikiosk/pbikiosk.toml']
  ],
  next_attempt: '2026-11-26T14:35:00Z'
};

const env = serversAndBrowser();

async function openPage(width, height, contextOptions = {}) {
  const context = await env.browser.newContext({ viewport: { width, height }, ...contextOptions });
  const page = await context.newPage();
  await page.goto(env.servers.pageUrl);
  return { context, page };
}

/**
 * Everything the audience should see of `rootSel` is on screen and unclipped: every rendered element
 * inside the viewport and inside its parent, every text block showing all of its text.
 */
function layoutProblems(page, rootSel, textSel) {
  return page.evaluate(([rootSel, textSel]) => {
    const problems = [];
    const W = window.innerWidth;
    const H = window.innerHeight;
    const eps = 0.5;
    const name = (e) => e.id ? '#' + e.id : e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') +
      (e.textContent ? ' "' + e.textContent.trim().slice(0, 30) + '"' : '');
    const root = document.querySelector(rootSel);
    for (const e of [root, ...root.querySelectorAll('*')]) {
      if (e.getClientRects().length === 0) continue; // not rendered (hidden)
      const r = e.getBoundingClientRect();
      if (r.left < -eps || r.top < -eps || r.right > W + eps || r.bottom > H + eps) {
        problems.push(`${name(e)} leaves the ${W}x${H} viewport: ${JSON.stringify(r)}`);
      }
      if (e !== root) {
        const p = e.parentElement.getBoundingClientRect();
        if (r.left < p.left - eps || r.top < p.top - eps || r.right > p.right + eps || r.bottom > p.bottom + eps) {
          problems.push(`${name(e)} leaves its container ${name(e.parentElement)}`);
        }
      }
    }
    for (const e of root.querySelectorAll(textSel)) {
      if (e.getClientRects().length === 0) continue;
      if (e.scrollHeight > e.clientHeight || e.scrollWidth > e.clientWidth) {
        problems.push(`${name(e)} is clipped: ${e.scrollWidth}x${e.scrollHeight} in ${e.clientWidth}x${e.clientHeight}`);
      }
    }
    return problems;
  }, [rootSel, textSel]);
}

/** True when the element is rendered and what is drawn at its centre belongs to it (nothing covers it). */
function seenAtCentre(locator) {
  return locator.evaluate((e) => {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return false;
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return hit !== null && (hit === e || e.contains(hit));
  });
}

function px(locator) {
  return locator.evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
}

for (const [w, h] of SIZES) {
  test(`status screen at ${w}x${h}: long texts and 9 facts all on screen, none clipped`, async () => {
    const { context, page } = await openPage(w, h);
    try {
      await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
      assert.equal(await send(page, { type: 'status', screen: LONG_SCREEN }), true);
      await page.screenshot({ path: join(OUT, `status-${w}x${h}.png`) });

      assert.deepEqual(await layoutProblems(page, '#status', 'h1, h2, p, th, td'), []);

      const title = page.locator('#status-title');
      const fix = page.locator('#status-fix');
      assert.equal(await title.textContent(), LONG_SCREEN.title);
      assert.equal(await fix.textContent(), LONG_SCREEN.fix);
      for (const l of [title, page.locator('#status-cause'), fix, page.locator('#status-next')]) {
        assert.equal(await seenAtCentre(l), true, `${await l.getAttribute('id')} is seen`);
      }
      const rows = page.locator('#status-facts tr');
      assert.equal(await rows.count(), LONG_SCREEN.facts.length);
      for (let i = 0; i < LONG_SCREEN.facts.length; i++) {
        const [label, value] = LONG_SCREEN.facts[i];
        assert.equal(await rows.nth(i).locator('th').textContent(), label);
        assert.equal(await rows.nth(i).locator('td').textContent(), value);
        assert.equal(await seenAtCentre(rows.nth(i).locator('th')), true, `fact label ${label} is seen`);
        assert.equal(await seenAtCentre(rows.nth(i).locator('td')), true, `fact ${label} is seen`);
      }
      // The brand in the corner never sits on the texts.
      const overlap = await page.evaluate(() => {
        const a = document.querySelector('.status-body').getBoundingClientRect();
        const b = document.querySelector('.status-brand').getBoundingClientRect();
        return !(b.left >= a.right || b.right <= a.left || b.top >= a.bottom || b.bottom <= a.top);
      });
      assert.equal(overlap, false, 'the brand overlaps the status body');

      // Readable from across a room: type sized from the smaller side of the screen.
      const short = Math.min(w, h);
      const fixPx = await px(fix);
      const factPx = await px(rows.nth(0).locator('td'));
      const titlePx = await px(title);
      console.log(`${w}x${h}: title ${titlePx}px, fix ${fixPx}px, facts ${factPx}px`);
      assert.ok(fixPx >= 0.028 * short, `fix text ${fixPx}px on a ${short}px side`);
      assert.ok(factPx >= 0.019 * short, `facts ${factPx}px on a ${short}px side`);
      assert.ok(titlePx >= 0.05 * short, `title ${titlePx}px on a ${short}px side`);

      // One column in portrait (the facts under the fix), two in landscape (the facts beside it).
      const fixBox = await page.locator('#status-fix-block').boundingBox();
      const factsBox = await page.locator('#status-facts-table').boundingBox();
      if (h > w) assert.ok(factsBox.y >= fixBox.y + fixBox.height - 0.5, 'facts under the fix in portrait');
      else assert.ok(factsBox.x >= fixBox.x + fixBox.width, 'facts beside the fix in landscape');
    } finally {
      await context.close();
    }
  });

  test(`short status texts keep the full type size at ${w}x${h}`, async () => {
    const { context, page } = await openPage(w, h);
    try {
      await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
      await send(page, { type: 'status', screen: {
        problem: 'network', title: 'No network connection',
        cause: 'Microsoft could not be reached (no network, DNS or proxy failure).',
        fix: 'Check the cable/Wi-Fi, DNS and any proxy. pbikiosk keeps retrying and resumes by itself.',
        facts: LONG_SCREEN.facts.slice(0, 4)
      } });
      const short = Math.min(w, h);
      const titlePx = await px(page.locator('#status-title'));
      assert.ok(Math.abs(titlePx - 0.075 * short) < 1, `title ${titlePx}px, want 7.5 % of ${short}px`);
      assert.deepEqual(await layoutProblems(page, '#status', 'h1, h2, p, th, td'), []);
      await page.screenshot({ path: join(OUT, `status-short-${w}x${h}.png`) });
    } finally {
      await context.close();
    }
  });

  test(`badge at ${w}x${h}: in the corner, on screen, text not clipped`, async () => {
    const { context, page } = await openPage(w, h);
    try {
      await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
      for (const text of ['Offline since 14:02',
        'Offline since 14:02 — showing the reports loaded before; they update again when the network is back']) {
        await send(page, { type: 'badge', text });
        assert.equal(await page.locator('#badge').isVisible(), true);
        assert.deepEqual(await layoutProblems(page, '#badge', '#badge'), []);
        const box = await page.locator('#badge').boundingBox();
        assert.ok(box.x + box.width > w * 0.9 && box.y + box.height > h * 0.9, 'badge in the bottom right corner');
      }
      await page.screenshot({ path: join(OUT, `badge-${w}x${h}.png`) });
    } finally {
      await context.close();
    }
  });
}

test('the status screen fits again when the window changes shape while it is up', async () => {
  // Portrait needs (nearly) no shrinking for these texts, landscape does: drawn for one, shown on the other.
  const { context, page } = await openPage(1080, 1920);
  try {
    await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
    await send(page, { type: 'status', screen: LONG_SCREEN });
    // A rotated output (or going fullscreen) resizes the window after the screen was drawn.
    await page.setViewportSize({ width: 1280, height: 720 });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    assert.deepEqual(await layoutProblems(page, '#status', 'h1, h2, p, th, td'), []);
    await page.screenshot({ path: join(OUT, 'status-resized-1280x720.png') });
  } finally {
    await context.close();
  }
});

test('texts far longer than the core writes are cut to a few lines, never run off the screen', async () => {
  const { context, page } = await openPage(1280, 720);
  try {
    await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
    const huge = 'The token endpoint answered with an error this kiosk does not know yet, so it is shown as it came. '.repeat(20);
    await send(page, { type: 'status', screen: { ...LONG_SCREEN, title: LONG_SCREEN.title.repeat(4), cause: huge, fix: huge } });
    assert.equal(await page.locator('#status').getAttribute('data-fit'), 'clamp');
    const r = await page.locator('.status-body').boundingBox();
    assert.ok(r.y >= 0 && r.y + r.height <= 720, `status body from ${r.y} to ${r.y + r.height}px`);
    // The next screen, with ordinary texts, is not clamped.
    await send(page, { type: 'status', screen: { ...LONG_SCREEN, facts: [] } });
    assert.equal(await page.locator('#status').getAttribute('data-fit'), null);
    assert.deepEqual(await layoutProblems(page, '#status', 'h1, h2, p, th, td'), []);
  } finally {
    await context.close();
  }
});

test('the start screen is in the static HTML: shown with scripts off', async () => {
  const { context, page } = await openPage(1920, 1080, { javaScriptEnabled: false });
  try {
    assert.equal(await page.locator('#start').isVisible(), true);
    assert.equal(await page.locator('#start-activity').textContent(), 'Starting…');
    assert.match(await page.locator('#start').innerText(), /pbikiosk/);
  } finally {
    await context.close();
  }
});

test('the core fills in the start screen: its line, and the device small under it', async () => {
  for (const [width, height] of [[1280, 720], [1080, 1920]]) {
    const { context, page } = await openPage(width, height);
    try {
      await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
      assert.equal(await page.locator('#start-facts').isVisible(), false, 'no facts before the core sends them');
      const facts = [['Device', 'kiosk-lobby-reception-building-b-floor-2'],
        ['IP address', '192.168.110.57, 10.20.0.4, fd12:3456:789a:1:2a0:c9ff:fe12:3456'], ['pbikiosk', '0.1.0']];
      assert.equal(await send(page, { type: 'starting', activity: 'Signing in as kiosk@contoso-demo.onmicrosoft.com…', facts }), true);
      assert.equal(await page.locator('#start-activity').textContent(), 'Signing in as kiosk@contoso-demo.onmicrosoft.com…');
      const shown = await page.locator('#start-facts').innerText();
      for (const [label, value] of facts) assert.ok(shown.includes(label) && shown.includes(value), shown);
      assert.deepEqual(await layoutProblems(page, '#start', 'p'), []);
      // Small and calm: the facts are smaller than the line above them.
      const size = (sel) => page.evaluate((sel) => parseFloat(getComputedStyle(document.querySelector(sel)).fontSize), sel);
      assert.ok(await size('#start-facts') < await size('#start-activity'));
      await send(page, { type: 'starting', activity: 'Loading ‘Sales Overview’', facts });
      assert.equal(await page.locator('#start-activity').textContent(), 'Loading ‘Sales Overview’');
      await page.screenshot({ path: join(OUT, `start-filled-${width}x${height}.png`) });
    } finally {
      await context.close();
    }
  }
});

test('the start screen stays until the first show, a status screen covers it, it never comes back', async () => {
  const { context, page } = await openPage(1080, 1920);
  try {
    const start = page.locator('#start');
    await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
    assert.equal(await start.isVisible(), true, 'visible before any message');
    assert.equal(await page.locator('#start-activity').isVisible(), true);
    assert.deepEqual(await layoutProblems(page, '#start', 'p'), []);
    await page.screenshot({ path: join(OUT, 'start-1080x1920.png') });

    // Nearly still: no more than the three dots, and none at all when the system asks for less motion.
    assert.ok(await page.evaluate(() => document.getAnimations().length) <= 3);
    await page.emulateMedia({ reducedMotion: 'reduce' });
    assert.equal(await page.evaluate(() => document.getAnimations().length), 0);
    await page.emulateMedia({ reducedMotion: 'no-preference' });

    // A status screen covers it; hiding the status screen before any item shows the start again.
    await send(page, { type: 'status', screen: { ...LONG_SCREEN, facts: LONG_SCREEN.facts.slice(0, 2) } });
    assert.equal(await page.evaluate(() => document.elementFromPoint(540, 960).closest('#status') !== null), true);
    await send(page, { type: 'hide_status' });
    assert.equal(await start.isVisible(), true);

    const prepare = (key, id) => send(page, { type: 'prepare', key, kind: 'report', id, group_id: 'g-signage',
      embed_url: embedUrl('report', id), access_token: 'aad-token-START-0123456789', token_type: 'aad' });
    await prepare('a', 'r-sales');
    await waitForMessage(page, (m) => m.type === 'rendered' && m.key === 'a', 15000, 'rendered a');
    assert.equal(await start.isVisible(), true, 'a prepared item does not end the start screen');
    await send(page, { type: 'show', key: 'a' });
    await waitForMessage(page, (m) => m.type === 'shown' && m.key === 'a', 5000, 'shown a');
    assert.equal(await start.isVisible(), false, 'hidden once the first item is shown');
    assert.equal(await page.evaluate(() => document.getAnimations().length), 0, 'no animation left running');

    await prepare('b', 'r-ops');
    await waitForMessage(page, (m) => m.type === 'rendered' && m.key === 'b', 15000, 'rendered b');
    await send(page, { type: 'show', key: 'b' });
    await waitForMessage(page, (m) => m.type === 'shown' && m.key === 'b', 5000, 'shown b');
    await send(page, { type: 'discard', key: 'a' });
    await send(page, { type: 'status', screen: LONG_SCREEN });
    await send(page, { type: 'hide_status' });
    assert.equal(await start.isVisible(), false, 'not back after a later switch or status screen');
  } finally {
    await context.close();
  }
});

test('a page loaded out of hours (index.html#dark) is black from its first frame, with scripts off too', async () => {
  // Scripts off: the black comes from the page's CSS alone, before any script could run.
  for (const javaScriptEnabled of [false, true]) {
    const context = await env.browser.newContext({ viewport: { width: 1280, height: 720 }, javaScriptEnabled });
    try {
      const page = await context.newPage();
      await page.goto(env.servers.pageUrl + '#dark');
      const black = () => page.evaluate(() => {
        const e = document.elementFromPoint(640, 360);
        return e !== null && e.id === 'dark' && getComputedStyle(e).backgroundColor === 'rgb(0, 0, 0)';
      });
      await page.screenshot({ path: join(OUT, `dark-start-js-${javaScriptEnabled}.png`) });
      const seen = await page.evaluate(() => {
        const e = document.elementFromPoint(640, 360);
        return `${location.hash} ${e && e.id} ${getComputedStyle(document.getElementById('dark')).display}`;
      });
      assert.equal(await black(), true, `#dark covers the start screen (scripts ${javaScriptEnabled ? 'on' : 'off'}): ${seen}`);
      if (!javaScriptEnabled) continue;
      await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
      // The core decides from here: lit, black again, lit.
      await send(page, { type: 'screen_power', power: 'on' });
      assert.equal(await black(), false, 'lit by the core');
      await send(page, { type: 'screen_power', power: 'off' });
      assert.equal(await black(), true, 'black again');
      await send(page, { type: 'screen_power', power: 'on' });
      assert.equal(await black(), false, 'lit again');
    } finally {
      await context.close();
    }
  }
  // The page without the fragment starts lit, as before.
  const { context, page } = await openPage(1280, 720);
  try {
    assert.equal(await page.evaluate(() => document.elementFromPoint(640, 360).id === 'dark'), false);
  } finally {
    await context.close();
  }
});
