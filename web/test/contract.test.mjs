// The page protocol as a contract with the Rust core (src/bridge.rs), no browser needed.
//
// fixtures/to-page.json is written by the core's own tests (tests/it/page_protocol.rs) from
// every message it sends, exactly as the shell delivers it; here each one goes through the
// page's decoder (protocol.js) and must be accepted and fully understood.
// fixtures/from-page.json is every message the page sends; the core's tests parse it with the
// core's parser, and here it must be what player.js really sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const read = (rel) => readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8');
const ctx = {};
vm.createContext(ctx);
vm.runInContext(read('../protocol.js'), ctx);
const P = ctx.PbikioskProtocol;
const playerSrc = read('../player.js');
const toPage = JSON.parse(read('./fixtures/to-page.json'));
const fromPage = JSON.parse(read('./fixtures/from-page.json'));

// Plain objects of this realm (values made inside the vm context have other prototypes).
const plain = (x) => JSON.parse(JSON.stringify(x));
const sorted = (xs) => [...new Set(xs)].sort();

/**
 * The object literal that starts at src[open] ('{'): its text and its top-level keys.
 * Enough of a scanner for player.js: skips strings, counts brackets.
 */
function objectLiteral(src, open) {
  const keys = [];
  let depth = 0;
  let expectKey = false;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    // A line comment may hold any text, an apostrophe included.
    if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === "'" || c === '"') {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
      if (i >= src.length) throw new Error('unterminated string at ' + open);
      expectKey = false;
      continue;
    }
    if ('{[('.includes(c)) {
      depth++;
      if (depth === 1) expectKey = true;
      continue;
    }
    if ('}])'.includes(c)) {
      depth--;
      if (depth === 0) return { text: src.slice(open, i + 1), keys };
      continue;
    }
    if (depth === 1 && c === ',') { expectKey = true; continue; }
    if (depth === 1 && expectKey && /\S/.test(c)) {
      const m = /^([A-Za-z_$][\w$]*)\s*:/.exec(src.slice(i));
      if (m) keys.push(m[1]);
      expectKey = false;
    }
  }
  throw new Error('unterminated object literal at ' + open);
}

/** type → the field names player.js sends with it, over all its send(type, {...}) calls. */
function pageSends() {
  const sends = new Map();
  const call = /\bsend\('([a-z_]+)',\s*\{/g;
  let m;
  while ((m = call.exec(playerSrc))) {
    const { keys } = objectLiteral(playerSrc, m.index + m[0].length - 1);
    sends.set(m[1], sorted([...(sends.get(m[1]) || []), ...keys]));
  }
  assert.ok(sends.size >= 5, 'found only ' + sends.size + ' message types sent by player.js');
  return sends;
}

test('every core message is delivered to the page\'s receive() and accepted by its decoder', () => {
  for (const entry of toPage) {
    const received = [];
    const sandbox = { window: { pbikiosk: { receive: (m) => received.push(m) } } };
    vm.createContext(sandbox);
    vm.runInContext(entry.script, sandbox);
    assert.equal(received.length, 1, entry.variant + ': the script reaches window.pbikiosk.receive once');
    const msg = plain(received[0]);
    assert.deepEqual(msg, entry.message, entry.variant);
    assert.deepEqual({ ...P.validateCoreMessage(msg) }, { ok: true }, entry.variant + ': ' + JSON.stringify(msg));
  }
});

test('the page knows every field the core sends, and the core sends every field the page reads', () => {
  const byType = new Map();
  for (const { message } of toPage) {
    const spec = P.CORE_MESSAGES[message.type];
    assert.ok(spec, 'unknown message type ' + message.type);
    for (const field of Object.keys(message)) {
      if (field === 'v' || field === 'type') continue;
      assert.ok(Object.prototype.hasOwnProperty.call(spec, field),
        message.type + ': the core sends "' + field + '", which the page does not read');
    }
    byType.set(message.type, sorted([...(byType.get(message.type) || []), ...Object.keys(message)]));
  }
  for (const [type, spec] of Object.entries(P.CORE_MESSAGES)) {
    assert.ok(byType.has(type), 'the page accepts "' + type + '", which the core never sends');
    for (const field of Object.keys(spec)) {
      assert.ok(byType.get(type).includes(field), type + ': the page reads "' + field + '", which the core never sends');
    }
    // Every value of an enum field is one the core sends.
    for (const [field, fieldSpec] of Object.entries(spec)) {
      const kind = fieldSpec.replace(/^opt:/, '');
      if (!kind.startsWith('enum:')) continue;
      const sent = toPage.filter((e) => e.message.type === type).map((e) => e.message[field]);
      for (const value of kind.slice(5).split('|')) {
        assert.ok(sent.includes(value), type + '.' + field + ': the page accepts "' + value + '", which the core never sends');
      }
    }
  }
});

test('every field of a status screen changes what the page shows', () => {
  const screens = toPage.filter((e) => e.message.type === 'status').map((e) => e.message.screen);
  assert.ok(screens.length > 0);
  const seen = new Set();
  for (const screen of screens) {
    const shown = JSON.stringify(P.statusScreenModel(screen, []));
    for (const [field, value] of Object.entries(screen)) {
      // An empty value shows nothing either way; the filled ones must each show.
      if (value === '' || value === null || (Array.isArray(value) && value.length === 0)) continue;
      seen.add(field);
      const without = { ...screen };
      delete without[field];
      const refused = P.validateScreen(without) !== null;
      const changed = JSON.stringify(P.statusScreenModel(without, [])) !== shown;
      assert.ok(refused || changed, 'status.screen.' + field + ' is sent by the core but the page ignores it');
    }
  }
  // The fixtures fill every field at least once.
  assert.deepEqual(sorted(seen), ['cause', 'facts', 'fix', 'next_attempt', 'problem', 'setup', 'sign_in', 'title']);
});

test('player.js has a handler for every core message type', () => {
  const at = playerSrc.indexOf('var handlers = {');
  assert.ok(at >= 0, 'player.js: no handlers table');
  const { keys } = objectLiteral(playerSrc, at + 'var handlers = '.length);
  assert.deepEqual(sorted(keys), sorted(Object.keys(P.CORE_MESSAGES)));
});

test('from-page.json is every message player.js sends, with the fields it sends', () => {
  const sends = pageSends();
  const fixture = new Map(fromPage.map(({ message }) => [message.type, message]));
  assert.equal(fixture.size, fromPage.length, 'one entry per message type');
  assert.deepEqual(sorted(fixture.keys()), sorted(sends.keys()));
  for (const [type, fields] of sends) {
    const message = fixture.get(type);
    const { v, type: t, ...rest } = message;
    assert.deepEqual(sorted(Object.keys(rest)), fields, type + ': fields in from-page.json vs player.js');
    // Framed the way the page frames it.
    assert.deepEqual(plain(P.outgoing(t, rest)), message, type);
    assert.equal(v, P.PROTOCOL_VERSION);
  }
});

/** The message tables of web/README.md: type → the field names its row lists, per direction. */
function readmeTables() {
  const text = read('../README.md');
  const core = text.indexOf('Core → page:');
  const page = text.indexOf('Page → core:');
  assert.ok(core >= 0 && page > core, 'web/README.md: no "Core → page" / "Page → core" sections');
  const table = (part) => {
    const rows = new Map();
    for (const line of part.split('\n')) {
      if (!line.startsWith('| `')) continue;
      const [types, fields] = line.split(/(?<!\\)\|/).slice(1, 3);
      // The field names are in the cell's code spans; the prose around them is not.
      const names = [...fields.matchAll(/`([^`]*)`/g)].map((m) => m[1]).join(', ')
        .replace(/"[^"]*"/g, '')
        .replace(/\([^)]*\)/g, '')
        .replace(/\{[^}]*\}/g, '')
        .split(',')
        .map((f) => (/^\s*([a-z_]+)/.exec(f) || [])[1])
        .filter(Boolean);
      for (const [, type] of types.matchAll(/`([a-z_]+)`/g)) rows.set(type, sorted(names));
    }
    return rows;
  };
  return { core: table(text.slice(core, page)), page: table(text.slice(page)) };
}

test('web/README.md describes every message with the fields it carries', () => {
  const readme = readmeTables();
  const fieldsOf = (entries) => {
    const m = new Map();
    for (const { message } of entries) {
      const { v, type, ...rest } = message;
      m.set(type, sorted([...(m.get(type) || []), ...Object.keys(rest)]));
    }
    return m;
  };
  for (const [direction, entries] of [['core', toPage], ['page', fromPage]]) {
    const want = fieldsOf(entries);
    assert.deepEqual(sorted(readme[direction].keys()), sorted(want.keys()), direction + ' message types in web/README.md');
    for (const [type, fields] of want) {
      assert.deepEqual(readme[direction].get(type), fields, 'web/README.md, `' + type + '`: fields');
    }
  }
});
