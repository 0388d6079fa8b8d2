// Diagnostic, not a test: N item switches through the player page in Chromium, then a heap
// snapshot; prints how many detached DOM nodes remain and the retainer path of a few (what keeps
// them alive). Found the powerbi-client router leak (see guardRouterLeak in player.js).
//   cd web && node testing/leakpath.mjs [N=20]
import { startServers, embedUrl, waitForMessage, send, CHROMIUM } from './harness.mjs';
const N = +(process.argv[2] || 20);
const servers = await startServers();
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [
  '--no-sandbox', '--disable-gpu',
  `--host-resolver-rules=MAP app.powerbi.com 127.0.0.1:${servers.powerbiPort}`,
  `--ignore-certificate-errors-spki-list=${servers.spkiHash}`] });
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
await page.goto(servers.pageUrl);
await waitForMessage(page, (m) => m.type === 'ready', 10000, 'ready');
const cdp = await page.context().newCDPSession(page);
const ids = ['r-sales', 'r-ops', 'r-cs'];
let prev = null;
for (let i = 0; i < N; i++) {
  const key = 'k' + i;
  await send(page, { type: 'prepare', key, kind: 'report', id: ids[i % 3], group_id: 'g-signage',
    embed_url: embedUrl('report', ids[i % 3]), access_token: 'tok-0123456789', token_type: 'aad', page: null, bookmark: null });
  await waitForMessage(page, (m) => m.type === 'rendered' && m.key === key, 15000, 'rendered ' + key);
  await send(page, { type: 'show', key });
  await waitForMessage(page, (m) => m.type === 'shown' && m.key === key, 5000, 'shown');
  if (prev) await send(page, { type: 'discard', key: prev });
  prev = key;
}
await new Promise((r) => setTimeout(r, 1000));
await cdp.send('HeapProfiler.enable');
await cdp.send('HeapProfiler.collectGarbage');
let chunks = [];
cdp.on('HeapProfiler.addHeapSnapshotChunk', (e) => chunks.push(e.chunk));
await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
const snap = JSON.parse(chunks.join(''));
await browser.close(); await servers.close();
const m = snap.snapshot.meta;
const NF = m.node_fields.length, EF = m.edge_fields.length;
const nTypes = m.node_types[0], eTypes = m.edge_types[0];
const nodes = snap.nodes, edges = snap.edges, strings = snap.strings;
const fi = (f) => m.node_fields.indexOf(f), ei = (f) => m.edge_fields.indexOf(f);
const iName = fi('name'), iEC = fi('edge_count'), iDet = fi('detachedness'), iType = fi('type');
const eType = ei('type'), eName = ei('name_or_index'), eTo = ei('to_node');
const count = nodes.length / NF;
const firstEdge = new Int32Array(count + 1);
for (let n = 0, e = 0; n < count; n++) { firstEdge[n] = e; e += nodes[n * NF + iEC] * EF; }
firstEdge[count] = edges.length;
const name = (n) => strings[nodes[n * NF + iName]];
// detached DOM nodes by name
const det = {};
for (let n = 0; n < count; n++) if (iDet >= 0 && nodes[n * NF + iDet] === 2) { const k = name(n); det[k] = (det[k] || 0) + 1; }
console.log("detached count", Object.keys(det).length);
// BFS from root over non-weak edges
const parent = new Int32Array(count).fill(-1), pedge = new Int32Array(count).fill(-1);
parent[0] = 0; const q = [0];
while (q.length) { const n = q.shift();
  for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += EF) {
    const t = eTypes[edges[e + eType]]; if (t === 'weak') continue;
    const to = edges[e + eTo] / NF; if (parent[to] !== -1) continue;
    parent[to] = n; pedge[to] = e; q.push(to);
  } }
let shown = 0;
for (let n = 0; n < count && shown < 3; n++) {
  if (nodes[n * NF + iDet] !== 2 || !/^<(div|iframe)/.test(name(n))) continue;
  if (parent[n] === -1) continue;
  shown++;
  const path = []; let c = n;
  while (c !== 0) { const e = pedge[c]; const t = eTypes[edges[e + eType]];
    const en = (t === 'element' || t === 'hidden') ? edges[e + eName] : strings[edges[e + eName]];
    path.push(`${name(parent[c]).slice(0, 60)} --[${t}:${String(en).slice(0, 40)}]--> ${name(c).slice(0, 60)}`); c = parent[c]; }
  console.log('--- path to', name(n)); console.log(path.reverse().join('\n'));
}
