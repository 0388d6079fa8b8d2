/* pbikiosk player page.
 *
 * The Rust core owns every decision. This page only renders what it is told and reports what happened.
 *   core → page: window.pbikiosk.receive(msg)            (msg: one parsed JSON object, "v":1)
 *   page → core: through the channel of channel.js (wry IPC, each message with this launch's secret),
 *                else window.ipc.postMessage(JSON.stringify(msg)), else window.__pbikioskOutbox.push(msg)
 *                (plain browser tests)
 *
 * Rules: never log or display an access token; never declare a global named `ipc` (it would shadow
 * wry's window.ipc). Everything lives in this IIFE except window.pbikiosk.
 */
(function () {
  'use strict';

  var PLAYER_VERSION = '0.1.0';
  var HEARTBEAT_MS = 5000;
  var P = window.PbikioskProtocol;

  // Every token the page has been given, so that any text leaving the page can be scrubbed of it.
  var knownTokens = [];
  function rememberToken(t) {
    if (knownTokens.indexOf(t) < 0) knownTokens.push(t);
    if (knownTokens.length > 8) knownTokens.shift();
  }

  // ---------------------------------------------------------------- page → core
  // The core's authenticated channel (channel.js, injected into this frame only): taken once,
  // which removes it from window, so no script after this one can use it.
  var channel = typeof window.__pbikioskChannel === 'function' ? window.__pbikioskChannel() : null;

  function send(type, fields) {
    var msg = P.redactDeep(P.outgoing(type, fields), knownTokens);
    if (channel) {
      try { channel(msg); return; } catch (e) { /* fall through */ }
    }
    // Without the channel (plain browser tests) the core would drop these: they carry no secret.
    var ipcBridge = window.ipc;
    if (ipcBridge && typeof ipcBridge.postMessage === 'function') {
      try { ipcBridge.postMessage(JSON.stringify(msg)); return; } catch (e) { /* fall through to the outbox */ }
    }
    (window.__pbikioskOutbox = window.__pbikioskOutbox || []).push(msg);
  }

  function errText(e) {
    if (e == null) return 'unknown error';
    if (typeof e === 'string') return e;
    if (e.message) return String(e.message);
    try { return JSON.stringify(e); } catch (x) { return String(e); }
  }

  // ---------------------------------------------------------------- DOM
  var stage, curtain, badgeEl, statusEl, startEl;
  function $(id) { return document.getElementById(id); }

  function sdk() {
    var client = window['powerbi-client'];
    if (!window.powerbi || !client || !client.models) return null;
    guardRouterLeak(window.powerbi);
    return { service: window.powerbi, models: client.models };
  }

  // powerbi-client 2.24.1 registers a router route "/reports/<uniqueId>/eventHooks/:eventName"
  // for every Report it creates and never removes it, not even in powerbi.reset(): the route's
  // handler keeps the Report, its container and its iframe alive (found with a Chromium heap
  // snapshot, web/testing/leakpath.mjs: every discarded container retained through
  // powerbi.wpmp.handlers; users of the library have reported memory climbing per report switch
  // for years, without this cause). A kiosk embeds once per switch, so the web process grew without
  // end. Those routes only serve `eventHooks` (accessTokenProvider, applicationContextProvider),
  // which we never configure (the core pushes tokens with setAccessToken), so they are not
  // registered at all. The service's own routes (with :uniqueId placeholders) pass untouched.
  var PER_EMBED_HOOK_ROUTE = /^\/reports\/[^/:]+\/eventHooks\/:eventName$/;
  function guardRouterLeak(service) {
    var router = service.router;
    if (!router || router.__pbikioskGuarded || typeof router.post !== 'function') return;
    var post = router.post;
    router.post = function (url) {
      if (typeof url === 'string' && PER_EMBED_HOOK_ROUTE.test(url)) return;
      return post.apply(this, arguments);
    };
    router.__pbikioskGuarded = true;
  }

  // ---------------------------------------------------------------- embeds
  // key → { key, kind, container, embed, preparedAt, startedAt, renderedOnce }
  var embeds = Object.create(null);
  var activeKey = null;

  function stripTokenAttribute(container) {
    // The SDK mirrors the token into a DOM attribute; it only needs its config copy.
    container.removeAttribute('powerbi-access-token');
  }

  // A screen taller than wide: a rotated panel (`[display] rotation`) or a portrait window.
  function portraitViewport() {
    return window.innerHeight > window.innerWidth;
  }

  function embedConfig(m, models, layout) {
    var tokenType = m.token_type === 'embed' ? models.TokenType.Embed : models.TokenType.Aad;
    if (m.kind === 'dashboard') {
      return {
        type: 'dashboard', id: m.id, embedUrl: m.embed_url, accessToken: m.access_token,
        tokenType: tokenType, pageView: 'fitToWidth'
      };
    }
    var settings = {
      panes: { filters: { visible: false }, pageNavigation: { visible: false } },
      background: models.BackgroundType.Default,
      layoutType: models.LayoutType[layout.layoutType]
    };
    if (layout.displayOption) settings.customLayout = { displayOption: models.DisplayOption[layout.displayOption] };
    var cfg = {
      type: 'report', id: m.id, embedUrl: m.embed_url, accessToken: m.access_token, tokenType: tokenType,
      permissions: models.Permissions.Read, viewMode: models.ViewMode.View,
      settings: settings
    };
    if (m.group_id) cfg.groupId = m.group_id;
    if (m.page) cfg.pageName = m.page;
    if (m.bookmark) cfg.bookmark = { name: m.bookmark };
    return cfg;
  }

  function removeEmbed(key) {
    var e = embeds[key];
    if (!e) return;
    var s = sdk();
    try { if (s) s.service.reset(e.container); } catch (x) { /* container may already be gone */ }
    if (e.container.parentNode) e.container.parentNode.removeChild(e.container);
    delete embeds[key];
    if (activeKey === key) activeKey = null;
  }

  // hasMobileLayout: what the report said about its mobile layout at an earlier attempt of this
  // prepare (null: not asked yet).
  function prepare(m, hasMobileLayout) {
    if (hasMobileLayout === undefined) hasMobileLayout = null;
    rememberToken(m.access_token);
    if (embeds[m.key]) removeEmbed(m.key); // a second prepare of the same key starts over
    var s = sdk();
    if (!s) {
      send('error', { key: m.key, message: 'SdkMissing', detail: 'powerbi-client is not loaded (vendor/powerbi.min.js)' });
      return;
    }
    var container = document.createElement('div');
    container.className = 'embed prepared';
    container.setAttribute('data-key', m.key);
    container.setAttribute('aria-hidden', 'true');
    stage.appendChild(container);
    var layout = P.reportLayout(m.report_layout, portraitViewport(), hasMobileLayout);
    var entry = { key: m.key, kind: m.kind, container: container, embed: null,
      preparedAt: performance.now(), startedAt: performance.now(), renderedOnce: false,
      // The SDK cannot switch between the mobile and the desktop layouts of a live report
      // (switchLayout refuses), and whether a report has a mobile layout is only known once it
      // loaded. So a report is embedded with its mobile layout on trial: until its page
      // confirms having one, its `rendered` is held back, and without one it is embedded again
      // fitted to the width — all off-screen, under the curtain.
      layoutOnTrial: m.kind === 'report' && layout.layoutType === 'MobilePortrait' && hasMobileLayout === null,
      heldRender: false };
    container.setAttribute('data-layout', layout.layoutType === 'MobilePortrait' ? 'mobile'
      : (layout.displayOption === 'FitToWidth' ? 'fit-width' : 'page'));
    embeds[m.key] = entry;

    var embed;
    try {
      embed = s.service.embed(container, embedConfig(m, s.models, layout));
    } catch (e) {
      removeEmbed(m.key);
      send('error', { key: m.key, message: 'EmbedFailed', detail: errText(e) });
      return;
    }
    entry.embed = embed;
    stripTokenAttribute(container);

    function sendRendered() {
      send('rendered', { key: m.key, ms: Math.round(performance.now() - entry.startedAt) });
      entry.renderedOnce = true;
    }
    embed.on('loaded', function () {
      if (embeds[m.key] !== entry) return;
      send('loaded', { key: m.key });
      if (entry.layoutOnTrial) checkMobileLayout(m, entry, s.models, sendRendered);
    });
    embed.on('rendered', function () {
      if (embeds[m.key] !== entry) return;
      if (entry.layoutOnTrial) { entry.heldRender = true; return; }
      sendRendered();
    });
    embed.on('error', function (ev) {
      if (embeds[m.key] !== entry) return;
      var d = (ev && ev.detail) || {};
      send('error', { key: m.key, message: String(d.message || 'Error'), detail: d });
    });
    if (m.kind === 'report') {
      embed.on('pageChanged', function (ev) {
        if (embeds[m.key] !== entry) return;
        var p = ev && ev.detail && ev.detail.newPage;
        send('page_changed', { key: m.key, page: p ? p.name : null, display_name: p ? p.displayName : null });
      });
    }
  }

  // The mobile layout on trial (see prepare): does the page the report opened on have one?
  function checkMobileLayout(m, entry, models, sendRendered) {
    Promise.resolve().then(function () { return entry.embed.getPages(); }).then(function (pages) {
      var page = (pages || []).filter(function (p) { return p.isActive; })[0] || (pages || [])[0];
      if (!page) throw new Error('the report has no pages');
      return page.hasLayout(models.LayoutType.MobilePortrait);
    }).then(function (has) {
      if (embeds[m.key] !== entry) return;
      if (has) {
        entry.layoutOnTrial = false;
        if (entry.heldRender) sendRendered();
      } else {
        // Like any prepare, not in the middle of a swap (see afterSwap).
        afterSwap(function () { if (embeds[m.key] === entry) prepare(m, false); });
      }
    }, function (err) {
      if (embeds[m.key] !== entry) return;
      // Unknown: keep what was asked for rather than load the report twice.
      entry.layoutOnTrial = false;
      send('js_error', { message: 'mobile layout check: ' + errText(err) });
      if (entry.heldRender) sendRendered();
    });
  }

  // The switch happens inside one animation frame: new one on top, old one below the curtain.
  // gap_ms = (first frame with the new one visible) − (last frame with the old one visible).
  //
  // The core sends `discard` (the old item) and `prepare` (the next one) right after `show`. Run
  // at once, the discard would take the old report off the screen before the swap — frames of
  // bare curtain — and building the next iframe would delay the swap's frames. So while a swap
  // is in flight they wait, and run one frame after the new item is on screen.
  var afterSwapQueue = null; // null: no swap in flight
  function afterSwap(fn) {
    if (afterSwapQueue) afterSwapQueue.push(fn); else fn();
  }
  function swapDone() {
    var q = afterSwapQueue || [];
    afterSwapQueue = null;
    q.forEach(function (fn) {
      try { fn(); } catch (e) { send('js_error', { message: 'after swap: ' + errText(e) }); }
    });
  }

  function show(m) {
    var next = embeds[m.key];
    if (!next) {
      send('error', { key: m.key, message: 'UnknownKey', detail: 'show: nothing prepared under this key' });
      return;
    }
    if (activeKey === m.key) { send('shown', { key: m.key, gap_ms: 0 }); return; }
    if (!afterSwapQueue) afterSwapQueue = [];
    requestAnimationFrame(function (lastOldFrame) {
      // This frame is painted with the old view. The swap goes into the next one.
      requestAnimationFrame(function (firstNewFrame) {
        if (embeds[m.key] !== next) { swapDone(); return; } // discarded meanwhile
        var prev = activeKey ? embeds[activeKey] : null;
        next.container.className = 'embed active';
        next.container.removeAttribute('aria-hidden');
        if (prev) {
          prev.container.className = 'embed prepared';
          prev.container.setAttribute('aria-hidden', 'true');
        }
        activeKey = m.key;
        // The start screen goes in the frame the first item appears, and never comes back.
        if (!startEl.hidden) startEl.hidden = true;
        send('shown', { key: m.key, gap_ms: Math.round((firstNewFrame - lastOldFrame) * 10) / 10 });
        // The deferred work starts once this frame (the new item) has been produced.
        requestAnimationFrame(swapDone);
      });
    });
  }

  function withEmbed(m, fn) {
    var e = embeds[m.key];
    if (!e || !e.embed) {
      send('error', { key: m.key, message: 'UnknownKey', detail: m.type + ': nothing prepared under this key' });
      return;
    }
    fn(e);
  }

  function setPage(m) {
    withEmbed(m, function (e) {
      if (e.kind !== 'report') {
        send('error', { key: m.key, message: 'NotSupported', detail: 'set_page: a dashboard has no pages' });
        return;
      }
      e.startedAt = performance.now();
      Promise.resolve().then(function () { return e.embed.setPage(m.page); }).catch(function (err) {
        send('error', { key: m.key, message: 'SetPageFailed', detail: errText(err) });
      });
    });
  }

  // Without a key the token is for every embed; with one (an item holding a token of its own,
  // such as a dashboard's embed token) for that embed only.
  function setToken(m) {
    rememberToken(m.access_token);
    Object.keys(embeds).forEach(function (key) {
      var e = embeds[key];
      if (!e.embed) return;
      if (m.key && m.key !== key) return;
      Promise.resolve().then(function () { return e.embed.setAccessToken(m.access_token); }).then(function () {
        stripTokenAttribute(e.container);
        send('token_applied', { key: key, ok: true });
      }, function (err) {
        stripTokenAttribute(e.container);
        send('token_applied', { key: key, ok: false, error: errText(err) });
      });
    });
  }

  function refresh(m) {
    withEmbed(m, function (e) {
      if (e.kind !== 'report') {
        send('error', { key: m.key, message: 'NotSupported', detail: 'refresh: only reports can be refreshed; use reload' });
        return;
      }
      Promise.resolve().then(function () { return e.embed.refresh(); }).catch(function (err) {
        send('error', { key: m.key, message: 'RefreshFailed', detail: errText(err) });
      });
    });
  }

  function reload(m) {
    withEmbed(m, function (e) {
      e.startedAt = performance.now();
      Promise.resolve().then(function () { return e.embed.reload(); }).catch(function (err) {
        send('error', { key: m.key, message: 'ReloadFailed', detail: errText(err) });
      });
    });
  }

  // ---------------------------------------------------------------- start screen
  function renderStarting(msg) {
    var vm = P.startScreenModel(msg, knownTokens);
    $('start-activity').textContent = vm.activity;
    var list = $('start-facts');
    while (list.firstChild) list.removeChild(list.firstChild);
    vm.facts.forEach(function (f) {
      var item = document.createElement('span');
      var label = document.createElement('span');
      label.className = 'start-fact-label';
      label.textContent = f[0];
      item.appendChild(label);
      item.appendChild(document.createTextNode(' ' + f[1]));
      list.appendChild(item);
    });
    list.hidden = vm.facts.length === 0;
  }

  // ---------------------------------------------------------------- status screen and badge
  // The sign-in code's time left, counted down once a second while the screen is up.
  var countdown = null;
  function startCountdown(si) {
    if (countdown) { clearInterval(countdown); countdown = null; }
    var el = $('sign-in-expires');
    if (!si) { el.textContent = ''; return; }
    var end = Date.now() + (si.secondsLeft || 0) * 1000;
    var tick = function () {
      var left = si.secondsLeft == null ? null : Math.max(0, Math.round((end - Date.now()) / 1000));
      el.textContent = si.expires + P.timeLeft(left);
    };
    tick();
    if (si.secondsLeft != null) countdown = setInterval(tick, 1000);
  }

  function renderStatus(screen) {
    var vm = P.statusScreenModel(screen, knownTokens);
    statusEl.setAttribute('data-problem', vm.problem);
    statusEl.setAttribute('data-tone', vm.tone);
    $('status-title').textContent = vm.title;
    $('status-cause').textContent = vm.cause;
    $('status-fix').textContent = vm.fix;
    $('status-cause-block').hidden = !vm.cause;
    $('status-fix-block').hidden = !vm.fix;
    var tbody = $('status-facts');
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    vm.facts.forEach(function (f) {
      var tr = document.createElement('tr');
      var th = document.createElement('th');
      var td = document.createElement('td');
      th.textContent = f[0];
      td.textContent = f[1];
      tr.appendChild(th);
      tr.appendChild(td);
      tbody.appendChild(tr);
    });
    $('status-facts-table').hidden = vm.facts.length === 0;
    $('status-next').textContent = vm.nextAttempt || '';
    $('status-next').hidden = !vm.nextAttempt;
    var si = vm.signIn;
    if (si) statusEl.setAttribute('data-sign-in', ''); else statusEl.removeAttribute('data-sign-in');
    $('status-sign-in').hidden = !si;
    $('sign-in-uri').textContent = si ? si.uri : '';
    $('sign-in-code').textContent = si ? si.code : '';
    startCountdown(si);
    var su = vm.setup;
    if (su) statusEl.setAttribute('data-setup', ''); else statusEl.removeAttribute('data-setup');
    $('status-setup').hidden = !su;
    $('setup-url').textContent = su ? su.url : '';
    $('setup-pin').textContent = su ? su.pin : '';
    $('setup-fingerprint').textContent = su ? su.fingerprint : '';
    var qrSrc = (si && si.qr) || (su && su.qr) || null;
    var qr = $('sign-in-qr');
    if (qrSrc) qr.setAttribute('src', qrSrc); else qr.removeAttribute('src');
    qr.hidden = !qrSrc;
    qr.setAttribute('alt', su ? 'QR code of the setup page address' : 'QR code of the sign-in address');
    statusEl.hidden = false;
    fitStatus();
  }

  // Long texts on a small or portrait screen: the status screen's type shrinks (its --fit
  // factor, see player.css) until the whole body fits between the paddings, so nothing is cut off
  // and nothing leaves the screen. Short texts keep the full size. Below FIT_MIN the type would
  // no longer be readable from a distance, so the texts are clamped instead.
  var FIT_MIN = 0.5;
  function statusFits() {
    var body = statusEl.firstElementChild;
    var cs = getComputedStyle(statusEl);
    var r = body.getBoundingClientRect();
    return r.top >= parseFloat(cs.paddingTop) - 0.5 &&
      r.bottom <= statusEl.clientHeight - parseFloat(cs.paddingBottom) + 0.5 &&
      body.scrollWidth <= body.clientWidth;
  }
  function setFit(f) { statusEl.style.setProperty('--fit', String(f)); }
  function fitStatus() {
    if (statusEl.hidden) return;
    statusEl.removeAttribute('data-fit');
    setFit(1);
    if (statusFits()) return;
    // Bisect: each probe is one synchronous layout, six give the size to within 1 %.
    var lo = FIT_MIN, hi = 1;
    setFit(lo);
    if (!statusFits()) { statusEl.setAttribute('data-fit', 'clamp'); return; }
    for (var i = 0; i < 6; i++) {
      var mid = (lo + hi) / 2;
      setFit(mid);
      if (statusFits()) lo = mid; else hi = mid;
    }
    setFit(Math.floor(lo * 1000) / 1000);
  }

  function setBadge(text) {
    if (text === null || text === '') {
      badgeEl.hidden = true;
      badgeEl.textContent = '';
    } else {
      badgeEl.textContent = P.redact(text, knownTokens);
      badgeEl.hidden = false;
    }
  }

  // ---------------------------------------------------------------- dispatch
  var handlers = {
    starting: renderStarting,
    prepare: function (m) { afterSwap(function () { prepare(m); }); },
    show: show,
    set_page: setPage,
    set_token: setToken,
    refresh: refresh,
    reload: reload,
    discard: function (m) { afterSwap(function () { removeEmbed(m.key); }); },
    status: function (m) { renderStatus(m.screen); },
    hide_status: function () { statusEl.hidden = true; startCountdown(null); },
    badge: function (m) { setBadge(m.text); },
    // Out of hours: black over everything. The core discards the embeds behind it (nothing
    // left to render) or prepares them ahead of the morning.
    screen_power: function (m) {
      var dark = $('dark');
      dark.hidden = m.power !== 'off';
      // A page that started black (index.html#dark) stays black by its fragment until lit.
      dark.classList.toggle('lit', m.power !== 'off');
    }
  };

  var started = false;
  var pending = [];

  function receive(msg) {
    if (!started) { pending.push(msg); return true; } // before DOMContentLoaded: keep order, run at start
    if (typeof msg === 'string') {
      try { msg = JSON.parse(msg); } catch (e) { send('js_error', { message: 'core message is not JSON' }); return false; }
    }
    var check = P.validateCoreMessage(msg);
    if (!check.ok) {
      send('js_error', { message: 'invalid core message: ' + check.error });
      return false;
    }
    try {
      handlers[msg.type](msg);
    } catch (e) {
      send('js_error', { message: msg.type + ': ' + errText(e) });
      return false;
    }
    return true;
  }

  // ---------------------------------------------------------------- start
  window.addEventListener('error', function (ev) {
    var where = ev.filename ? ' (' + ev.filename.split('/').pop() + ':' + ev.lineno + ')' : '';
    send('js_error', { message: String(ev.message || 'error') + where });
  });
  window.addEventListener('unhandledrejection', function (ev) {
    send('js_error', { message: 'unhandled rejection: ' + errText(ev.reason) });
  });

  window.pbikiosk = { receive: receive, version: PLAYER_VERSION };

  function start() {
    stage = $('stage');
    curtain = $('curtain');
    badgeEl = $('badge');
    statusEl = $('status');
    startEl = $('start');
    // The window may change size after a status screen is up (going fullscreen, a rotated output).
    window.addEventListener('resize', fitStatus);
    started = true;
    send('ready', { version: PLAYER_VERSION });
    pending.splice(0).forEach(receive);
    setInterval(function () { send('heartbeat', { t: Math.round(performance.now()) }); }, HEARTBEAT_MS);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
