/* pbikiosk simulator: a fake Power BI embed page.
 *
 * Served by the simulator as https://app.powerbi.com/reportEmbed?... and /dashboardEmbed?... (embed.html)
 * with this file at /sim-embed.js. It speaks the powerbi-client wire protocol the way the real iframe does:
 *   host → iframe: {method, url, headers:{id, uid, ...}, body}            (postMessage, "*")
 *   iframe → host: {statusCode, headers:{id: <same id>}, body}            (reply, to event.source)
 *   iframe → host: {method:"POST", url:"/reports/<uid>/events/<name>", headers:{id}, body}   (events)
 * and draws a recognisable report (name, active page, live clock, a chart that differs per page), so a
 * screenshot proves exactly what is shown.
 *
 * Metadata: GET /_sim/embed-info?reportId|dashboardId=..&groupId=.. → {name, kind, pages:[{name, displayName, order}], mobileLayout,
 *           bookmarks:[{name, displayName, page?}], forgePageMessages, offerDownload}
 * Bookmarks: applied at load (config.bookmark {name} or {state}), by applyByName or applyState; an applied bookmark opens its
 * page and draws its display name and its accent colour (a bar along the top, the header's rule), so screenshots tell
 * bookmarks apart. Each request is told to the simulator: POST /_sim/bookmark-applied {name, known} (its stats count them).
 * Hostile report (forgePageMessages, the simulator's forge_page_messages fault): the frame posts forged player
 * messages through every IPC path it can find, as a custom visual's script could; the player must drop them all.
 * Download (offerDownload, the simulator's offer_download fault): the frame clicks a link to /_sim/download (a CSV sent as
 * an attachment), as a report's "export data" would; the player must refuse it.
 * Layouts: a report with mobileLayout, loaded with settings.layoutType MobilePortrait (2), is drawn in one column
 * with a "Mobile layout" label; settings.customLayout.displayOption FitToWidth (1) gets a "Fit to width" label.
 * Tokens:   POST /_sim/check-token (body: the token) → {valid, expired}
 * Both degrade gracefully (placeholder metadata, token accepted) when the endpoint is missing.
 * Storage: like the real page, each load sets a cookie (SameSite=None; Secure) and uses localStorage
 * inside the frame; if the browser blocks either, the load fails with an `error` event (StorageBlocked).
 * This page never displays or logs a token.
 */
(function () {
  'use strict';

  var query = new URLSearchParams(location.search);
  var uid = query.get('uid') || '';
  var reportId = query.get('reportId') || '';
  var dashboardId = query.get('dashboardId') || '';
  var groupId = query.get('groupId') || '';
  var kind = (dashboardId || /dashboardEmbed/i.test(location.pathname)) ? 'dashboard' : 'report';
  var entityId = kind === 'dashboard' ? dashboardId : reportId;
  var eventPrefix = (kind === 'dashboard' ? '/dashboards/' : '/reports/') + uid + '/events/';

  var TOKEN_EXPIRED = {
    message: 'TokenExpired',
    detailedMessage: 'Access token has expired, resubmit with a new access token',
    errorCode: '403',
    level: 6
  };

  var state = {
    config: null,        // last load body (token kept here only, never drawn)
    token: null,
    activePage: null,    // page name
    loaded: false,
    generation: 0,       // bumps on every load, so stale async work is dropped
    dataAsOf: null,
    bookmark: null       // the applied bookmark ({name, displayName, page?}), if any
  };

  // Like the service's answer to a bookmark name the report does not have.
  var BOOKMARK_NOT_FOUND = {
    message: 'BookmarkNotFound',
    detailedMessage: 'No bookmark with this name in the report',
    level: 6
  };

  // ------------------------------------------------------------ helpers
  function newId() {
    return Math.random().toString(36).slice(2, 12) + Date.now().toString(36);
  }

  function postEvent(name, body) {
    window.parent.postMessage({
      method: 'POST', url: eventPrefix + name, headers: { id: newId() }, body: body === undefined ? {} : body
    }, '*');
  }

  function reply(source, id, statusCode, body) {
    source.postMessage({ statusCode: statusCode, headers: { id: id }, body: body === undefined ? {} : body }, '*');
  }

  function placeholderInfo() {
    var id = entityId || 'unknown';
    var short = id.length > 16 ? id.slice(0, 8) + '…' : id;
    if (kind === 'dashboard') return { name: 'Dashboard ' + short, kind: 'dashboard', pages: [], mobileLayout: false, bookmarks: [] };
    return {
      name: 'Report ' + short, kind: 'report', mobileLayout: false, bookmarks: [],
      pages: [
        { name: 'ReportSection1', displayName: 'Page 1', order: 0 },
        { name: 'ReportSection2', displayName: 'Page 2', order: 1 },
        { name: 'ReportSection3', displayName: 'Page 3', order: 2 }
      ]
    };
  }

  var infoPromise = (function () {
    var q = new URLSearchParams();
    if (kind === 'dashboard') q.set('dashboardId', dashboardId); else q.set('reportId', reportId);
    if (groupId) q.set('groupId', groupId);
    return fetch('/_sim/embed-info?' + q.toString(), { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('status ' + r.status); return r.json(); })
      .then(function (info) {
        var ph = placeholderInfo();
        if (!info || typeof info !== 'object') return ph;
        var pages = Array.isArray(info.pages) ? info.pages.filter(function (p) { return p && p.name; }) : ph.pages;
        pages = pages.slice().sort(function (a, b) { return (a.order || 0) - (b.order || 0); });
        return {
          name: typeof info.name === 'string' && info.name ? info.name : ph.name,
          kind: info.kind === 'dashboard' || info.kind === 'report' ? info.kind : kind,
          pages: kind === 'report' && pages.length === 0 ? ph.pages : pages,
          mobileLayout: info.mobileLayout === true,
          bookmarks: Array.isArray(info.bookmarks)
            ? info.bookmarks.filter(function (b) { return b && typeof b.name === 'string' && b.name; })
            : [],
          forgePageMessages: info.forgePageMessages === true,
          offerDownload: info.offerDownload === true
        };
      })
      .catch(function () { return placeholderInfo(); });
  })();

  function checkToken(token) {
    if (typeof token !== 'string' || token === '') return Promise.resolve({ valid: false, expired: false });
    // Embed tokens are checked against what they were made for, like the service does.
    var q = kind === 'dashboard' ? 'dashboardId=' + encodeURIComponent(dashboardId || '')
                                 : 'reportId=' + encodeURIComponent(reportId || '');
    // powerbi-client's models.TokenType: 0 Aad, 1 Embed. The service reads the token as that.
    var tt = state.config && state.config.tokenType;
    if (tt === 0 || tt === 1) q += '&tokenType=' + tt;
    return fetch('/_sim/check-token?' + q, { method: 'POST', body: token, cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('status ' + r.status); return r.json(); })
      .then(function (v) { return { valid: v.valid !== false, expired: v.expired === true }; })
      .catch(function () { return { valid: true, expired: false }; }); // no simulator endpoint: accept
  }

  function tokenOk(v) { return v.valid && !v.expired; }

  function findPage(info, name) {
    for (var i = 0; i < info.pages.length; i++) if (info.pages[i].name === name) return info.pages[i];
    return null;
  }

  function findBookmark(info, name) {
    for (var i = 0; i < info.bookmarks.length; i++) if (info.bookmarks[i].name === name) return info.bookmarks[i];
    return null;
  }

  // A bookmark's state as capture() hands it out: opaque base64, like the service's.
  var STATE_PREFIX = 'pbikiosk-sim-bookmark:';
  function bookmarkState(b) { return btoa(STATE_PREFIX + encodeURIComponent(b.name)); }
  function bookmarkOfState(info, st) {
    var text;
    try { text = atob(String(st)); } catch (e) { return null; }
    if (text.indexOf(STATE_PREFIX) !== 0) return null;
    var name;
    try { name = decodeURIComponent(text.slice(STATE_PREFIX.length)); } catch (e) { return null; }
    return findBookmark(info, name);
  }

  function tellBookmark(name, known) {
    fetch('/_sim/bookmark-applied', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, cache: 'no-store',
      body: JSON.stringify({ name: String(name), known: known })
    }).catch(function () { /* no simulator endpoint: nothing to count */ });
  }

  // Makes `b` the applied bookmark: its page becomes the active one when it names one.
  function useBookmark(info, b) {
    state.bookmark = b;
    if (b.page && findPage(info, b.page)) state.activePage = b.page;
  }

  // Calls back once the DOM change has been painted (two frames), with a timer fallback when frames are throttled.
  function afterPaint(cb) {
    var done = false;
    function once() { if (!done) { done = true; cb(); } }
    requestAnimationFrame(function () { requestAnimationFrame(function () { setTimeout(once, 0); }); });
    setTimeout(once, 1000);
  }

  // ------------------------------------------------------------ drawing
  function hash(s) { // FNV-1a
    var h = 0x811c9dc5;
    for (var i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
    return h >>> 0;
  }
  function rng(seed) { // mulberry32
    return function () {
      seed = (seed + 0x6D2B79F5) >>> 0;
      var t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  var PALETTES = [
    ['#118dff', '#12239e', '#e66c37', '#6b007b'], ['#e044a7', '#744ec2', '#d9b300', '#d64550'],
    ['#197278', '#1aab40', '#15c6f4', '#4092ff'], ['#ffa058', '#be5dc9', '#c83d95', '#3049ad']
  ];
  // Bookmark accents: far apart in hue, none of them the report's own colours (grey, yellow rule).
  var ACCENTS = ['#d13438', '#107c10', '#0078d4', '#8764b8', '#ca5010', '#038387'];
  function accentOf(name) { return ACCENTS[hash(name) % ACCENTS.length]; }

  var LABELS = ['North', 'South', 'East', 'West', 'Central', 'Online', 'Retail', 'Export'];
  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  function el(tag, attrs, text) {
    var ns = /^(svg|rect|line|polyline|circle|text|path|g)$/.test(tag) ? 'http://www.w3.org/2000/svg' : null;
    var e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }

  function chartSvg(page) {
    var h = hash(page.name);
    var r = rng(h);
    var colors = PALETTES[h % PALETTES.length];
    var type = ['bars', 'line', 'columns'][(h >>> 3) % 3];
    var n = 5 + ((h >>> 5) % 4);
    var values = [];
    for (var i = 0; i < n; i++) values.push(Math.round(20 + r() * 80));
    var W = 1000, H = 560, L = 70, B = 60, T = 100, R = 30;
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'xMidYMid meet', 'data-chart': type });
    svg.appendChild(el('text', { x: L, y: 42, 'font-size': 30, 'font-weight': 600, fill: '#252423' },
      page.displayName + ' · ' + (type === 'line' ? 'trend by month' : 'by region')));
    for (var g = 0; g <= 4; g++) {
      var gy = T + (H - T - B) * g / 4;
      svg.appendChild(el('line', { x1: L, x2: W - R, y1: gy, y2: gy, stroke: '#e1dfdd', 'stroke-width': 1 }));
      svg.appendChild(el('text', { x: L - 12, y: gy + 8, 'font-size': 20, fill: '#8a8886', 'text-anchor': 'end' }, String(100 - g * 25)));
    }
    var plotW = W - L - R, plotH = H - T - B, step = plotW / n;
    if (type === 'line') {
      var pts = values.map(function (v, i) { return (L + step * (i + 0.5)) + ',' + (T + plotH * (1 - v / 100)); });
      svg.appendChild(el('polyline', { points: pts.join(' '), fill: 'none', stroke: colors[0], 'stroke-width': 6, 'stroke-linejoin': 'round' }));
      values.forEach(function (v, i) {
        svg.appendChild(el('circle', { cx: L + step * (i + 0.5), cy: T + plotH * (1 - v / 100), r: 9, fill: colors[1] }));
        svg.appendChild(el('text', { x: L + step * (i + 0.5), y: H - 22, 'font-size': 22, fill: '#605e5c', 'text-anchor': 'middle' }, MONTHS[i]));
      });
    } else {
      values.forEach(function (v, i) {
        var bw = step * (type === 'bars' ? 0.62 : 0.8);
        var x = L + step * i + (step - bw) / 2, y = T + plotH * (1 - v / 100);
        svg.appendChild(el('rect', { x: x, y: y, width: bw, height: T + plotH - y, rx: 4, fill: colors[i % colors.length] }));
        svg.appendChild(el('text', { x: x + bw / 2, y: y - 10, 'font-size': 22, fill: '#323130', 'text-anchor': 'middle' }, String(v)));
        svg.appendChild(el('text', { x: x + bw / 2, y: H - 22, 'font-size': 22, fill: '#605e5c', 'text-anchor': 'middle' }, LABELS[i]));
      });
    }
    return svg;
  }

  function kpis(seedText) {
    var r = rng(hash(seedText) ^ 0x9e3779b9);
    var side = el('div', { id: 'side' });
    [['Revenue', '€', 'M'], ['Orders', '', 'k'], ['On time', '', '%']].forEach(function (k) {
      var v = k[2] === '%' ? (80 + r() * 19).toFixed(1) : (k[2] === 'M' ? (1 + r() * 9).toFixed(2) : Math.round(10 + r() * 90));
      var box = el('div', { 'class': 'kpi' });
      box.appendChild(el('b', null, k[1] + v + k[2]));
      box.appendChild(el('span', null, k[0]));
      side.appendChild(box);
    });
    return side;
  }

  function dashboardTiles(name) {
    var r = rng(hash(entityId + name));
    var tiles = el('div', { id: 'tiles' });
    ['Revenue', 'Orders', 'Returns', 'Stock', 'Visitors', 'NPS'].forEach(function (label) {
      var t = el('div', { 'class': 'tile' });
      t.appendChild(el('b', null, String(Math.round(100 + r() * 900))));
      t.appendChild(el('span', null, label));
      tiles.appendChild(t);
    });
    return tiles;
  }

  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function hms(d) { return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds()); }

  function tickClock() {
    var c = document.getElementById('clock');
    if (c) c.textContent = hms(new Date());
  }

  // How the host asked for the report to be laid out, as far as this report can follow it.
  var LAYOUT_MOBILE_PORTRAIT = 2, DISPLAY_FIT_TO_WIDTH = 1;
  function layoutOf(info) {
    var st = (state.config && state.config.settings) || {};
    if (kind !== 'report') return 'screen'; // a dashboard fills the screen
    if (st.layoutType === LAYOUT_MOBILE_PORTRAIT) return info.mobileLayout ? 'mobile' : 'page';
    if (st.customLayout && st.customLayout.displayOption === DISPLAY_FIT_TO_WIDTH) return 'fit-width';
    return 'page';
  }

  // The page's box on the screen (see embed.html): 16:9 fitted or as wide as the screen for the desktop
  // layout, the whole screen for the mobile one.
  function placePage(layout) {
    var W = window.innerWidth, H = window.innerHeight;
    var w = W, h = H, left = 0, top = 0;
    if (layout === 'fit-width') {
      h = W * 9 / 16;
    } else if (layout === 'page') {
      w = Math.min(W, H * 16 / 9);
      h = w * 9 / 16;
      left = (W - w) / 2;
      top = (H - h) / 2;
    }
    var st = document.documentElement.style;
    st.setProperty('--vw', (w / 100) + 'px');
    st.setProperty('--vh', (h / 100) + 'px');
    st.setProperty('--box-left', left + 'px');
    st.setProperty('--box-top', top + 'px');
    st.setProperty('--box-width', w + 'px');
    st.setProperty('--box-height', h + 'px');
  }
  window.addEventListener('resize', function () {
    var root = document.getElementById('sim');
    if (root && root.getAttribute('data-layout')) placePage(root.getAttribute('data-layout'));
  });

  function draw(info) {
    var root = document.getElementById('sim');
    var body = document.getElementById('body');
    var layout = layoutOf(info);
    root.setAttribute('data-layout', layout);
    placePage(layout);
    document.getElementById('layout').textContent =
      layout === 'mobile' ? 'Mobile layout' : (layout === 'fit-width' ? 'Fit to width' : '');
    document.getElementById('name').textContent = info.name;
    while (body.firstChild) body.removeChild(body.firstChild);
    if (kind === 'dashboard') {
      document.getElementById('page').textContent = 'Dashboard';
      body.appendChild(dashboardTiles(info.name));
    } else {
      var page = findPage(info, state.activePage) || info.pages[0];
      document.getElementById('page').textContent = page.displayName;
      root.setAttribute('data-page', page.name);
      var b = state.bookmark;
      document.getElementById('bookmark').textContent = b ? (b.displayName || b.name) : '';
      if (b) {
        root.setAttribute('data-bookmark', b.name);
        root.style.setProperty('--accent', accentOf(b.name));
      } else {
        root.removeAttribute('data-bookmark');
        root.style.removeProperty('--accent');
      }
      var chart = el('div', { id: 'chart' });
      chart.appendChild(chartSvg(page));
      body.appendChild(chart);
      body.appendChild(kpis(page.name));
    }
    document.getElementById('ids').textContent =
      'Simulated Power BI · ' + kind + ' ' + (entityId || '?') + (groupId ? ' · workspace ' + groupId : '');
    document.getElementById('refreshed').textContent = 'Data as of ' + hms(state.dataAsOf || new Date());
    tickClock();
    root.className = 'ready';
  }

  function drawError(text) {
    var root = document.getElementById('sim');
    document.getElementById('loading').textContent = text;
    root.className = 'loading';
  }

  setInterval(tickClock, 1000);

  // The real embed page keeps its session in cookies (SameSite=None; Secure) and uses
  // localStorage, inside this frame, which is a third party to the page that embeds it. A
  // browser policy that blocks either breaks the real service, so it fails here too.
  // A host that cannot lift a block on purpose (Playwright's Chromium contexts are incognito,
  // which blocks third-party cookies by design) sets PBISIM_STORAGE_CHECK = false before this
  // script; the player's own web view never does.
  function blockedStorage() {
    if (typeof PBISIM_STORAGE_CHECK !== 'undefined' && PBISIM_STORAGE_CHECK === false) return null;
    var blocked = [];
    var v = newId();
    try {
      document.cookie = 'pbisim_probe=' + v + '; Path=/; SameSite=None; Secure';
      if (document.cookie.indexOf('pbisim_probe=' + v) < 0) blocked.push('cookies');
    } catch (e) { blocked.push('cookies (' + (e && e.name) + ')'); }
    try {
      window.localStorage.setItem('pbisim_probe', v);
      if (window.localStorage.getItem('pbisim_probe') !== v) blocked.push('localStorage');
      window.localStorage.removeItem('pbisim_probe');
    } catch (e) { blocked.push('localStorage (' + (e && e.name) + ')'); }
    return blocked.length ? blocked.join(' and ') : null;
  }

  // ------------------------------------------------------------ protocol
  function doLoad(config) {
    var gen = ++state.generation;
    state.loaded = false;
    state.config = config || {};
    state.token = state.config.accessToken || null;
    var blocked = blockedStorage();
    if (blocked) {
      drawError('This content isn\u2019t available: the browser blocks ' + blocked + ' in the report frame.');
      postEvent('error', {
        message: 'StorageBlocked',
        detailedMessage: 'The report frame cannot use ' + blocked + ' (third-party cookies or storage are blocked)',
        errorCode: 'StorageBlocked',
        level: 6
      });
      return;
    }
    Promise.all([infoPromise, checkToken(state.token)]).then(function (res) {
      if (gen !== state.generation) return;
      var info = res[0];
      if (!tokenOk(res[1])) {
        drawError('This content isn\u2019t available: the access token has expired.');
        postEvent('error', TOKEN_EXPIRED);
        return;
      }
      if (kind === 'report') {
        var wanted = state.config.pageName && findPage(info, state.config.pageName);
        state.activePage = wanted ? wanted.name : (info.pages[0] && info.pages[0].name);
        // The bookmark goes on after the page: a bookmark carries its own page.
        state.bookmark = null;
        var asked = state.config.bookmark;
        if (asked && typeof asked.name === 'string') {
          var named = findBookmark(info, asked.name);
          // A name the report lacks: it opens as if none was given.
          if (named) useBookmark(info, named);
          tellBookmark(asked.name, !!named);
        } else if (asked && typeof asked.state === 'string') {
          var captured = bookmarkOfState(info, asked.state);
          if (captured) useBookmark(info, captured);
          tellBookmark(captured ? captured.name : '(state)', !!captured);
        }
      }
      state.dataAsOf = new Date();
      draw(info);
      state.loaded = true;
      postEvent('loaded', { initiator: 'sdk' });
      // Like the service, announce the page the report opened on.
      var opened = kind === 'report' && findPage(info, state.activePage);
      if (opened) postEvent('pageChanged', { newPage: { name: opened.name, displayName: opened.displayName } });
      afterPaint(function () { if (gen === state.generation) postEvent('rendered', {}); });
    });
  }

  function pagesBody(info) {
    return info.pages.map(function (p, i) {
      return { name: p.name, displayName: p.displayName, isActive: p.name === state.activePage,
        visibility: 0, order: typeof p.order === 'number' ? p.order : i };
    });
  }

  function handle(req, respond) {
    var method = String(req.method || '').toUpperCase();
    var path = String(req.url || '').split('?')[0];
    var body = req.body;
    var what = kind; // "report" or "dashboard" — the SDK prefixes urls with the embed type

    if (method === 'POST' && (path === '/' + what + '/load' || path === '/report/prepare')) {
      if (!body || typeof body.accessToken !== 'string' || !body.accessToken) {
        return respond(400, { message: 'accessToken is required' });
      }
      respond(202, {});
      return doLoad(body);
    }
    if (method === 'POST' && path === '/' + what + '/reload') {
      respond(202, {});
      return doLoad(state.config);
    }
    if (method === 'POST' && path === '/' + what + '/token') {
      var token = typeof body === 'string' ? body : '';
      return checkToken(token).then(function (v) {
        if (!tokenOk(v)) {
          respond(403, TOKEN_EXPIRED);
          postEvent('error', TOKEN_EXPIRED);
          return;
        }
        state.token = token;
        if (state.config) state.config.accessToken = token;
        respond(200, {});
      });
    }
    if (method === 'POST' && path === '/report/render') {
      respond(202, {});
      return afterPaint(function () { postEvent('rendered', {}); });
    }
    if (kind === 'report') {
      if (method === 'GET' && path === '/report/pages') {
        return infoPromise.then(function (info) { respond(200, pagesBody(info)); });
      }
      var layoutQuery = /^\/report\/pages\/([^/]+)\/layoutTypes\/([A-Za-z]+)$/.exec(path);
      if (method === 'GET' && layoutQuery) {
        return infoPromise.then(function (info) {
          if (!findPage(info, decodeURIComponent(layoutQuery[1]))) {
            return respond(400, { message: 'PageNotFound', detailedMessage: 'No page with this name in the report' });
          }
          // Every report has its master layout; the mobile ones only when they were made.
          var type = layoutQuery[2];
          respond(200, type === 'Master' || type === 'Custom' || (type === 'MobilePortrait' && info.mobileLayout));
        });
      }
      if (method === 'PUT' && path === '/report/pages/active') {
        return infoPromise.then(function (info) {
          var page = body && findPage(info, body.name);
          if (!page) return respond(400, { message: 'PageNotFound', detailedMessage: 'No page with this name in the report' });
          respond(202, {});
          state.activePage = page.name;
          if (!state.loaded) return; // applied when the load finishes drawing
          var gen = state.generation;
          draw(info);
          postEvent('pageChanged', { newPage: { name: page.name, displayName: page.displayName } });
          afterPaint(function () { if (gen === state.generation) postEvent('rendered', {}); });
        });
      }
      if (method === 'POST' && path === '/report/refresh') {
        respond(202, {});
        if (!state.loaded) return;
        var gen = state.generation;
        return infoPromise.then(function (info) {
          state.dataAsOf = new Date();
          draw(info);
          afterPaint(function () { if (gen === state.generation) postEvent('rendered', {}); });
        });
      }
      if (method === 'GET' && path === '/report/bookmarks') {
        return infoPromise.then(function (info) {
          respond(200, info.bookmarks.map(function (b) {
            return { name: b.name, displayName: b.displayName || b.name, state: bookmarkState(b) };
          }));
        });
      }
      if (method === 'POST' && (path === '/report/bookmarks/applyByName' || path === '/report/bookmarks/applyState')) {
        var byName = path === '/report/bookmarks/applyByName';
        return infoPromise.then(function (info) {
          var b = byName ? (body && typeof body.name === 'string' ? findBookmark(info, body.name) : null)
            : (body && typeof body.state === 'string' ? bookmarkOfState(info, body.state) : null);
          tellBookmark(b ? b.name : (byName && body && typeof body.name === 'string' ? body.name : '(state)'), !!b);
          if (!b) return respond(400, BOOKMARK_NOT_FOUND);
          respond(202, {});
          var before = state.activePage;
          useBookmark(info, b);
          if (!state.loaded) return; // drawn when the load finishes
          var gen = state.generation;
          draw(info);
          var page = findPage(info, state.activePage);
          if (page && page.name !== before) {
            postEvent('pageChanged', { newPage: { name: page.name, displayName: page.displayName } });
          }
          postEvent('bookmarkApplied', { bookmarkName: b.name });
          afterPaint(function () { if (gen === state.generation) postEvent('rendered', {}); });
        });
      }
      if (method === 'POST' && path === '/report/bookmarks/play') return respond(202, {});
      if (method === 'POST' && path === '/report/bookmarks/capture') {
        var current = state.bookmark || { name: '' };
        return respond(200, { name: 'Bookmark' + newId(), displayName: 'Captured', state: bookmarkState(current) });
      }
      if (method === 'POST' && /^\/report\/switchMode\//.test(path)) {
        return path === '/report/switchMode/view' ? respond(202, {}) : respond(403, { message: 'The kiosk account may only view this report' });
      }
      if (method === 'GET' && /^\/report(\/pages\/[^/]+)?\/filters$/.test(path)) return respond(200, []);
      if ((method === 'POST' || method === 'PUT' || method === 'DELETE') && /^\/report(\/pages\/[^/]+)?\/filters$/.test(path)) return respond(202, {});
      if (method === 'GET' && /^\/report\/pages\/[^/]+\/visuals$/.test(path)) return respond(200, []);
      if (method === 'PATCH' && path === '/report/settings') return respond(202, {});
      if (method === 'POST' && path === '/report/print') return respond(202, {});
    }
    return respond(404, { message: 'Not supported by the pbikiosk simulator: ' + method + ' ' + path });
  }

  // ------------------------------------------------------------ fault: a hostile report
  // What a custom visual's script could try: the player's own messages (a fresh page, a heartbeat, script
  // errors, an expired token for every likely key), an oversized one, and the real page's envelope with a
  // guessed secret, through every IPC path a frame can reach. Nothing here is logged: the test looks for
  // FORGED_MARK in the player's log, where it must never appear.
  var FORGED_MARK = 'FORGED-BY-REPORT-FRAME';

  function forgedMessages() {
    var big = new Array(70 * 1024 + 1).join('x');
    var list = [
      { v: 1, type: 'ready', version: FORGED_MARK },
      { v: 1, type: 'heartbeat', t: Date.now() },
      { v: 1, type: 'js_error', message: FORGED_MARK + ' js_error' },
      { v: 1, type: 'js_error', message: FORGED_MARK + ' oversized ' + big }
    ];
    for (var k = 1; k <= 8; k++) {
      list.push({ v: 1, type: 'error', key: 'e' + k, message: 'TokenExpired', detail: TOKEN_EXPIRED });
    }
    var out = list.map(function (m) { return JSON.stringify(m); });
    out.push(JSON.stringify({ auth: '00000000000000000000000000000000', message: list[0] }));
    out.push(JSON.stringify({ message: list[2] }));
    return out;
  }

  function ipcPaths() {
    var paths = [];
    function add(get) {
      try {
        var target = get();
        if (target && typeof target.postMessage === 'function' && paths.indexOf(target) < 0) paths.push(target);
      } catch (e) { /* cross-origin: refused, as it should be */ }
    }
    add(function () { return window.ipc; });
    add(function () { return window.webkit.messageHandlers.ipc; });
    add(function () { return window.parent.ipc; });
    add(function () { return window.top.webkit.messageHandlers.ipc; });
    return paths;
  }

  function offerDownload() {
    var a = document.createElement('a');
    a.href = '/_sim/download';
    a.download = 'pbikiosk-sim-export.csv';
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  function forge() {
    var paths = ipcPaths();
    forgedMessages().forEach(function (text) {
      paths.forEach(function (p) { try { p.postMessage(text); } catch (e) { /* keep trying the others */ } });
    });
    // The page's own channel, were it reachable from here.
    try {
      var take = window.parent.__pbikioskChannel;
      if (typeof take === 'function') take()({ v: 1, type: 'ready', version: FORGED_MARK });
    } catch (e) { /* cross-origin */ }
  }

  infoPromise.then(function (info) {
    if (info.forgePageMessages) { forge(); setInterval(forge, 500); }
    if (info.offerDownload) offerDownload();
  });

  // Registered synchronously while the page parses: /report/load arrives right after the iframe's load event.
  window.addEventListener('message', function (event) {
    var msg = event.data;
    if (!msg || typeof msg !== 'object' || event.source !== window.parent) return;
    if (typeof msg.statusCode === 'number') return;            // the host acknowledging one of our events
    if (typeof msg.method !== 'string' || typeof msg.url !== 'string') return;
    var id = msg.headers && msg.headers.id;
    var source = event.source;
    var answered = false;
    try {
      handle(msg, function (status, body) {
        if (answered) return;
        answered = true;
        reply(source, id, status, body);
      });
    } catch (e) {
      if (!answered) { answered = true; reply(source, id, 500, { message: 'Simulator error: ' + (e && e.message) }); }
    }
  }, false);
})();
