// The Chromium baseline's server and "token script": serves bench/chromium/ and the pinned
// powerbi-client on http://127.0.0.1, fetches ONE access token from the simulator's token endpoint
// (ROPC, the way a kiosk token script would) when the page asks for its config, looks up the
// reports' embed URLs once, and appends what the page reports (POST /report) to a JSON-lines file.
//
//   node bench/chromium/serve.mjs --sim-config FILE --seconds N --out FILE
//   FILE from `pbikiosk sim --scenario bench/sim-scenario.toml --embed-front ... > FILE`
// Prints "listening http://127.0.0.1:PORT" when ready. Only talks to 127.0.0.1.
import { createServer } from 'node:http';
import { readFileSync, appendFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const simConfig = readFileSync(arg('--sim-config'), 'utf8');
const seconds = Number(arg('--seconds', '5'));
const out = arg('--out');
const value = (key) => {
  const m = simConfig.match(new RegExp(`^${key} = "([^"]*)"`, 'm'));
  if (!m) throw new Error(`${key} missing in the simulator's config`);
  return m[1];
};
const sim = value('authority');
if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(sim)) throw new Error(`not a loopback simulator: ${sim}`);

let config = null;
async function loadConfig() {
  if (config) return config;
  const form = new URLSearchParams({
    grant_type: 'password', client_id: value('client_id'), client_secret: value('client_secret'),
    username: value('username'), password: value('password'), scope: `${value('resource')}/.default`
  });
  const t = await fetch(`${sim}/${value('tenant')}/oauth2/v2.0/token`, { method: 'POST', body: form });
  if (!t.ok) throw new Error(`token endpoint: ${t.status}`);
  const token = (await t.json()).access_token;
  const auth = { headers: { authorization: `Bearer ${token}` } };
  const reports = [];
  for (const g of (await (await fetch(`${sim}/v1.0/myorg/groups`, auth)).json()).value) {
    for (const r of (await (await fetch(`${sim}/v1.0/myorg/groups/${g.id}/reports`, auth)).json()).value) {
      reports.push({ id: r.id, name: r.name, embedUrl: r.embedUrl, groupId: g.id });
    }
  }
  config = { token, reports, seconds };
  return config;
}

const files = {
  '/': [join(here, 'index.html'), 'text/html; charset=utf-8'],
  '/baseline.js': [join(here, 'baseline.js'), 'text/javascript'],
  '/powerbi.min.js': [join(here, '..', '..', 'web', 'vendor', 'powerbi.min.js'), 'text/javascript']
};

const server = createServer(async (req, res) => {
  console.error(`${new Date().toISOString()} ${req.method} ${req.url}`);
  try {
    if (req.method === 'POST' && req.url === '/report') {
      let body = '';
      for await (const c of req) body += c;
      appendFileSync(out, JSON.stringify(JSON.parse(body)) + '\n');
      res.writeHead(204); return res.end();
    }
    if (req.url === '/config') {
      const c = await loadConfig();
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(c));
    }
    const f = files[req.url];
    if (!f) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { 'content-type': f[1] });
    res.end(readFileSync(f[0]));
  } catch (e) {
    res.writeHead(500); res.end(String(e));
  }
});
server.listen(0, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${server.address().port}`));
