// Unit tests of the pure helpers in web/protocol.js (loaded the way the browser loads it: a classic script).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const src = readFileSync(fileURLToPath(new URL('../protocol.js', import.meta.url)), 'utf8');
const ctx = { };
vm.createContext(ctx);
vm.runInContext(src, ctx);
const P = ctx.PbikioskProtocol;

const TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJwb3dlcmJpIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
const prepare = {
  v: 1, type: 'prepare', key: 'k1', kind: 'report', id: 'r1', group_id: 'g1',
  embed_url: 'https://app.powerbi.com/reportEmbed?reportId=r1&groupId=g1', access_token: TOKEN, token_type: 'aad',
  page: null, bookmark: null
};

test('every core message type of the protocol validates', () => {
  const ok = [
    prepare,
    { ...prepare, page: 'ReportSection2', bookmark: 'Bm1' },
    (({ page, bookmark, group_id, ...rest }) => rest)(prepare), // optional fields may be absent
    { ...prepare, kind: 'dashboard', token_type: 'embed' },
    ...['auto', 'landscape', 'portrait', 'fit_width'].map((l) => ({ ...prepare, report_layout: l })),
    { v: 1, type: 'starting', activity: 'Signing in as kiosk@contoso.com…', facts: [['Device', 'kiosk-lobby']] },
    { v: 1, type: 'starting', activity: 'Finding your reports', facts: [] },
    { v: 1, type: 'show', key: 'k1' },
    { v: 1, type: 'set_page', key: 'k1', page: 'ReportSection2' },
    { v: 1, type: 'set_token', access_token: TOKEN },
    { v: 1, type: 'refresh', key: 'k1' },
    { v: 1, type: 'reload', key: 'k1' },
    { v: 1, type: 'discard', key: 'k1' },
    { v: 1, type: 'status', screen: { problem: 'network', title: 't', cause: 'c', fix: 'f', facts: [['a', 'b']], next_attempt: '14:05' } },
    { v: 1, type: 'status', screen: { problem: 'not_configured', title: 't', cause: '', fix: '', facts: [] } },
    { v: 1, type: 'hide_status' },
    { v: 1, type: 'badge', text: 'Offline since 14:02' },
    { v: 1, type: 'badge', text: null }
  ];
  for (const m of ok) assert.deepEqual({ ...P.validateCoreMessage(m) }, { ok: true }, JSON.stringify(m));
});

test('bad core messages are refused with a reason that never contains the token', () => {
  const bad = [
    null, 'show', [], {},
    { type: 'show', key: 'k' },                       // no v
    { v: 2, type: 'show', key: 'k' },                 // wrong v
    { v: 1, type: 'explode' },
    { v: 1, type: 'show' },
    { v: 1, type: 'show', key: '' },
    { ...prepare, kind: 'tile' },
    { ...prepare, token_type: 'bearer' },
    { ...prepare, access_token: '' },
    { ...prepare, access_token: 42 },
    { ...prepare, page: 7 },
    { ...prepare, report_layout: 'mobile' },
    { v: 1, type: 'starting', facts: [] },
    { v: 1, type: 'starting', activity: 'x' },
    { v: 1, type: 'starting', activity: 'x', facts: [['only one']] },
    { v: 1, type: 'badge' },
    { v: 1, type: 'status', screen: { title: 't' } },
    { v: 1, type: 'status', screen: { problem: 'p', title: 't', cause: 'c', fix: 'f', facts: [['only one']] } },
    { v: 1, type: 'status', screen: { problem: 'p', title: 't', cause: 'c', fix: 'f', next_attempt: 5 } }
  ];
  for (const m of bad) {
    const r = P.validateCoreMessage(m);
    assert.equal(r.ok, false, JSON.stringify(m));
    assert.equal(typeof r.error, 'string');
    assert.ok(!r.error.includes(TOKEN));
  }
});

test('report layouts: the mobile one on portrait screens when there is one, else fitted to the width', () => {
  const page = { layoutType: 'Custom', displayOption: 'FitToPage' };
  const width = { layoutType: 'Custom', displayOption: 'FitToWidth' };
  const mobile = { layoutType: 'MobilePortrait', displayOption: null };
  const cases = [
    // setting, portrait viewport, has a mobile layout (null: not known yet) → settings
    ['auto', false, null, page], ['auto', false, true, page], ['auto', false, false, page],
    ['auto', true, null, mobile], ['auto', true, true, mobile], ['auto', true, false, width],
    [undefined, true, false, width], [undefined, false, null, page],
    ['landscape', true, true, page], ['landscape', false, null, page],
    ['fit_width', true, true, width], ['fit_width', false, null, width],
    ['portrait', false, null, mobile], ['portrait', false, true, mobile], ['portrait', true, false, width]
  ];
  for (const [setting, portrait, has, want] of cases) {
    assert.deepEqual({ ...P.reportLayout(setting, portrait, has) }, want, JSON.stringify([setting, portrait, has]));
  }
});

test('start screen model: the line and the device, cleaned', () => {
  const vm = P.startScreenModel({ activity: ' Signing in as kiosk@contoso.com… ',
    facts: [['Device', 'kiosk-lobby'], ['IP address', ''], ['Token', TOKEN], 'junk'] }, []);
  assert.equal(vm.activity, 'Signing in as kiosk@contoso.com…');
  assert.equal(JSON.stringify(vm.facts), JSON.stringify([['Device', 'kiosk-lobby'], ['Token', '[redacted]']]));
  assert.equal(P.startScreenModel({ activity: '', facts: [] }, []).activity, 'Starting…');
});

test('outgoing adds v and type', () => {
  assert.deepEqual({ ...P.outgoing('shown', { key: 'k', gap_ms: 16.7 }) }, { v: 1, type: 'shown', key: 'k', gap_ms: 16.7 });
});

test('redact removes known tokens and anything JWT-shaped', () => {
  assert.equal(P.redact('token=' + TOKEN + ' end', []), 'token=[redacted] end');
  assert.equal(P.redact('x opaque-secret-1234 y', ['opaque-secret-1234']), 'x [redacted] y');
  assert.equal(P.redact('short abc', ['abc']), 'short abc'); // too short to be a token
  const deep = P.redactDeep({ message: 'bad ' + TOKEN, accessToken: 'whatever', nested: [{ t: 'opaque-secret-1234' }] }, ['opaque-secret-1234']);
  assert.equal(JSON.stringify(deep), JSON.stringify({ message: 'bad [redacted]', accessToken: '[redacted]', nested: [{ t: '[redacted]' }] }));
});

test('status screen model: calm tones, cleaned facts, next attempt', () => {
  const vm1 = P.statusScreenModel({ problem: 'invalid_credentials', title: ' Cannot sign in ', cause: 'c', fix: 'f',
    facts: [['Account', 'kiosk@contoso.com'], ['', ''], ['Code', 50126], 'junk'], next_attempt: '14:35' }, []);
  assert.equal(vm1.tone, 'problem');
  assert.equal(vm1.title, 'Cannot sign in');
  assert.equal(JSON.stringify(vm1.facts), JSON.stringify([['Account', 'kiosk@contoso.com'], ['Code', '50126']]));
  assert.equal(vm1.nextAttempt, 'Next attempt at 14:35');

  const vm2 = P.statusScreenModel({ problem: 'not_configured', title: '', cause: '', fix: '' }, []);
  assert.equal(vm2.tone, 'setup');
  assert.equal(vm2.title, 'This screen needs attention');
  assert.equal(vm2.nextAttempt, null);

  const vm3 = P.statusScreenModel({ problem: 'x', title: 'T', cause: 'token ' + TOKEN, fix: 'f', facts: [['tok', TOKEN]] }, []);
  assert.ok(!JSON.stringify(vm3).includes(TOKEN));
});

test('the not-configured screen shows the setup address, PIN, fingerprint and only an SVG data URI as its QR code', () => {
  const base = { problem: 'not_configured', title: 'This screen is not configured yet', cause: 'c', fix: 'f' };
  const setup = { url: 'https://192.168.1.20:8443/', pin: '042917', fingerprint: '3A F1 09 C4 77 B2 0D 1E',
    qr: 'data:image/svg+xml;base64,PHN2Zy8+' };
  const vm = P.statusScreenModel({ ...base, setup }, []);
  assert.deepEqual(JSON.parse(JSON.stringify(vm.setup)), setup);
  assert.equal(P.statusScreenModel({ ...base, setup: { ...setup, qr: 'https://evil.example/qr.png' } }, []).setup.qr, null);
  assert.equal(P.statusScreenModel({ ...base, setup: { ...setup, pin: '' } }, []).setup, null);
  assert.equal(P.statusScreenModel({ ...base, problem: 'network', setup }, []).setup, null, 'only on the not-configured screen');
  assert.equal(P.validateScreen({ ...base, setup: { ...setup, pin: 42 } }), '"setup.pin" must be a string');
  assert.equal(P.validateScreen({ ...base, setup }), null);
});

test('next_attempt as an ISO time is shown as local hh:mm', () => {
  const iso = new Date(2026, 10, 26, 14, 5, 0).toISOString();
  assert.equal(P.formatNextAttempt(iso), '14:05');
  assert.equal(P.formatNextAttempt('in 30 s'), 'in 30 s');
  assert.equal(P.formatNextAttempt(null), null);
});

test('a sign-in screen shows the code, the address and only an SVG data URI as its QR code', () => {
  const base = { problem: 'sign_in_required', title: 'Sign in to show reports', cause: 'c', fix: 'f' };
  const sign = { user_code: 'ABCD1234E', verification_uri: 'https://microsoft.com/devicelogin',
    qr: 'data:image/svg+xml;base64,PHN2Zy8+', expires: '14:20', seconds_left: 900 };
  const vm = P.statusScreenModel({ ...base, sign_in: sign }, []);
  assert.deepEqual(JSON.parse(JSON.stringify(vm.signIn)), { code: 'ABCD1234E', uri: 'https://microsoft.com/devicelogin',
    qr: 'data:image/svg+xml;base64,PHN2Zy8+', expires: 'This code works until 14:20', secondsLeft: 900 });
  assert.equal(P.timeLeft(845), ' (14:05 left)');
  assert.equal(P.timeLeft(0), ' (a new code is on its way)');
  assert.equal(P.statusScreenModel({ ...base, sign_in: { ...sign, seconds_left: 'x' } }, []).signIn.secondsLeft, null);
  for (const qr of ['https://evil.example/qr.png', 'data:text/html;base64,PHNjcmlwdD4=', 42]) {
    assert.equal(P.statusScreenModel({ ...base, sign_in: { ...sign, qr } }, []).signIn.qr, null, String(qr));
  }
  assert.equal(P.statusScreenModel(base, []).signIn, null);
  assert.equal(P.statusScreenModel({ ...base, sign_in: { ...sign, user_code: '' } }, []).signIn, null);
  assert.equal(P.validateScreen({ ...base, sign_in: { ...sign, user_code: 5 } }), '"sign_in.user_code" must be a string');
  assert.equal(P.validateScreen({ ...base, sign_in: sign }), null);
});
