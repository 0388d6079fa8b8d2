// The phone in the setup test (tests/it/setup.rs): a phone-sized headless Chromium opens the
// kiosk's setup page and goes through it: PIN, method, values, live check, two reports, save.
// The device certificate is accepted by its public key's hash only
// (--ignore-certificate-errors-spki-list), as a person compares the fingerprint.
//
// With values.method "device_code" the phone gets a code instead: it takes a 390x844 screenshot
// of the code step, taps the code (to copy it), writes the code to code_file for the test to
// approve on the simulator, and waits for the sign-in to go on to the check. With decline_first
// the test declines the first code: the phone shows that, asks for a new code, and writes that one.
//
// Input: one JSON argument {url, pin, cert_pem_file, values, reports: 2, out_dir, code_file?, decline_first?}.
// Output (stdout, last line): JSON {requests: [{method, url, body}], responses: [{url, body}],
// checks: [...], code?, copied?, link?, done: true}.
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2]);
const pem = readFileSync(input.cert_pem_file, 'utf8');
const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
const spkiHash = createHash('sha256').update(spki).digest('base64');

const browser = await chromium.launch({
  executablePath: process.env.PBIKIOSK_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', `--ignore-certificate-errors-spki-list=${spkiHash}`]
});
const requests = [];
const responses = [];
const extra = {};
try {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true
  });
  const page = await context.newPage();
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), body: r.postData() || '' }));
  page.on('response', async (r) => {
    if (!r.url().includes('/api/')) return;
    try { responses.push({ url: r.url(), body: await r.text() }); } catch (e) { /* gone with the page */ }
  });
  await page.goto(input.url);
  await page.fill('#pin', input.pin);
  await page.screenshot({ path: join(input.out_dir, 'setup-phone-pin.png'), fullPage: true });
  await page.click('#pin-form button');
  await page.waitForSelector('#step-values:not([hidden])', { timeout: 15000 });
  const v = input.values;
  await page.selectOption('#method', v.method);
  await page.fill('#tenant', v.tenant);
  await page.fill('#client_id', v.client_id);
  if (v.method === 'password') {
    await page.fill('#username', v.username);
    await page.fill('#password', v.password);
  }
  if (v.method !== 'device_code') await page.fill('#client_secret', v.client_secret || '');
  await page.screenshot({ path: join(input.out_dir, 'setup-phone-values.png'), fullPage: true });
  await page.click('#values-form button');
  if (v.method === 'device_code') {
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    await page.waitForFunction(() => document.getElementById('code').textContent.length > 0, null, { timeout: 30000 });
    await page.locator('#step-code').scrollIntoViewIfNeeded();
    extra.code = await page.textContent('#code');
    extra.link = await page.getAttribute('#code-link', 'href');
    await page.click('#code');
    await page.waitForFunction(() => document.getElementById('code-copied').textContent.length > 0, null, { timeout: 5000 });
    extra.copied = await page.evaluate(() => navigator.clipboard.readText());
    extra.copied_message = await page.textContent('#code-copied');
    await page.screenshot({ path: join(input.out_dir, 'setup-phone-code.png') });
    writeFileSync(input.code_file, extra.code);
    if (input.decline_first) {
      // The test declines this code: the phone says so and offers a new one.
      await page.waitForSelector('#code-retry:not([hidden])', { timeout: 30000 });
      extra.declined_message = await page.textContent('#code-state');
      await page.screenshot({ path: join(input.out_dir, 'setup-phone-code-declined.png') });
      await page.click('#code-retry');
      const first = extra.code;
      await page.waitForFunction((f) => {
        const t = document.getElementById('code').textContent;
        return t.length > 0 && t !== f && !document.getElementById('code-box').hidden;
      }, first, { timeout: 30000 });
      extra.first_code = first;
      extra.code = await page.textContent('#code');
      writeFileSync(input.code_file, extra.code);
    }
  }
  await page.waitForSelector('#catalog input[type=checkbox]', { timeout: 60000 });
  const checks = await page.$$eval('#checks li', (els) => els.map((e) => ({ name: e.getAttribute('data-check'), ok: e.className === 'ok' })));
  const boxes = await page.$$('#catalog input[data-report]');
  for (const b of boxes.slice(0, input.reports)) await b.check();
  await page.fill('#seconds', '20');
  await page.screenshot({ path: join(input.out_dir, 'setup-phone-reports.png'), fullPage: true });
  await page.click('#save');
  await page.waitForSelector('#step-done:not([hidden])', { timeout: 30000 });
  await page.screenshot({ path: join(input.out_dir, 'setup-phone-done.png'), fullPage: true });
  console.log(JSON.stringify({ requests, responses, checks, ...extra, done: true }));
} catch (e) {
  console.log(JSON.stringify({ requests, responses, ...extra, error: String(e && e.stack || e), done: false }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
