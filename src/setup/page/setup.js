// The phone's setup page: PIN, sign-in values, live check, reports, save. Every request goes
// to this same HTTPS origin; the session cookie is HttpOnly and each request carries the
// session's CSRF token in a header.
(function () {
  'use strict';
  var csrf = '';
  function $(id) { return document.getElementById(id); }

  function call(path, body) {
    var headers = { 'Content-Type': 'application/json' };
    if (csrf) headers['X-Setup-Csrf'] = csrf;
    return fetch(path, {
      method: 'POST', headers: headers, credentials: 'same-origin',
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    });
  }

  function say(el, text, bad) {
    el.textContent = text || '';
    el.className = 'msg' + (bad ? ' bad' : '');
  }

  // The steps shown with each step: the sign-in values stay in sight while a code waits and
  // while reports are picked.
  var VISIBLE = {
    'step-pin': ['step-pin'],
    'step-values': ['step-values'],
    'step-code': ['step-values', 'step-code'],
    'step-reports': ['step-values', 'step-code', 'step-reports'],
    'step-done': ['step-done']
  };
  function show(step) {
    ['step-pin', 'step-values', 'step-code', 'step-reports', 'step-done'].forEach(function (s) {
      var visible = VISIBLE[step].indexOf(s) >= 0;
      if (s === 'step-code' && method() !== 'device_code') visible = false;
      $(s).hidden = !visible;
    });
  }

  function sessionEnded(res) {
    if (res.status !== 401) return false;
    csrf = '';
    stopPolling();
    show('step-pin');
    say($('pin-msg'), (res.body.error || '') + ' ' + (res.body.fix || ''), true);
    return true;
  }

  // ------------------------------------------------------------------ PIN
  $('pin-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    say($('pin-msg'), 'Checking…');
    call('/api/pin', { pin: $('pin').value }).then(function (res) {
      if (res.status === 200 && res.body.csrf) {
        csrf = res.body.csrf;
        say($('pin-msg'), '');
        show('step-values');
        return;
      }
      $('pin').value = '';
      say($('pin-msg'), (res.body.error || 'Refused.') + ' ' + (res.body.fix || ''), true);
    }, function () { say($('pin-msg'), 'The screen cannot be reached. Are you on the same network?', true); });
  });

  // ------------------------------------------------------------------ sign-in values
  function method() { return $('method').value; }
  function applyMethod() {
    var m = method();
    Array.prototype.forEach.call(document.querySelectorAll('[data-for]'), function (el) {
      el.hidden = el.getAttribute('data-for').split(' ').indexOf(m) < 0;
    });
    $('values-submit').textContent = m === 'device_code' ? 'Get a code' : 'Check';
    if (m !== 'device_code') {
      stopPolling();
      $('step-code').hidden = true;
    }
  }
  $('method').addEventListener('change', applyMethod);
  applyMethod();

  function values() {
    var v = { method: method(), tenant: $('tenant').value, client_id: $('client_id').value };
    if (method() === 'password') {
      v.username = $('username').value;
      v.password = $('password').value;
    }
    if (method() !== 'device_code') v.client_secret = $('client_secret').value;
    return v;
  }

  function renderChecks(report) {
    var list = $('checks');
    while (list.firstChild) list.removeChild(list.firstChild);
    (report.checks || []).forEach(function (c) {
      var li = document.createElement('li');
      li.className = c.ok ? 'ok' : 'bad';
      li.setAttribute('data-check', c.name);
      li.appendChild(document.createTextNode(c.name + (c.message ? ': ' + c.message : '')));
      if (!c.ok && c.fix) {
        var fix = document.createElement('span');
        fix.className = 'fix';
        fix.textContent = c.fix;
        li.appendChild(fix);
      }
      list.appendChild(li);
    });
  }

  // The live check: the same for every method (with a code, once the sign-in is complete).
  function runCheck() {
    var btn = $('values-submit');
    var label = btn.textContent;
    btn.disabled = true;
    btn.textContent = 'Checking…';
    renderChecks({ checks: [] });
    call('/api/check', values()).then(function (res) {
      btn.disabled = false;
      btn.textContent = label;
      if (sessionEnded(res)) return;
      renderChecks(res.body);
      if (res.body.ok) loadReports();
    }, function () { btn.disabled = false; btn.textContent = label; });
  }

  $('values-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (method() === 'device_code') startCode(); else runCheck();
  });

  // ------------------------------------------------------------------ sign-in with a code
  // The device asks Microsoft for the code and polls for the sign-in; this page only shows
  // the code and asks the device how it is going.
  var polling = null;
  function stopPolling() {
    if (polling) { clearTimeout(polling); polling = null; }
  }

  function codeShown(v) {
    $('code-box').hidden = !v;
    if (!v) return;
    if ($('code').textContent !== v.user_code) {
      say($('code-copied'), '');
      // A new code: bring it into sight (the form above fills a phone's screen).
      if ($('step-code').scrollIntoView) $('step-code').scrollIntoView({ block: 'start' });
    }
    $('code').textContent = v.user_code;
    $('code-link').href = v.verification_uri;
    $('code-link').textContent = v.verification_uri.replace(/^https:\/\//, '');
  }

  function codeOver(text) {
    stopPolling();
    codeShown(null);
    say($('code-state'), text, true);
    $('code-retry').hidden = false;
  }

  function onView(v) {
    switch (v.state) {
      case 'starting':
        say($('code-state'), 'Asking Microsoft for a code…');
        pollSoon();
        break;
      case 'waiting': {
        codeShown(v);
        var mins = Math.max(1, Math.round(v.expires_in_s / 60));
        say($('code-state'), (v.note ? v.note + ' ' : '') + 'Waiting for the sign-in. The code works for about ' +
          mins + (mins === 1 ? ' more minute.' : ' more minutes.'));
        pollSoon();
        break;
      }
      case 'signed_in':
        stopPolling();
        codeShown(null);
        say($('code-state'), 'Signed in. The screen keeps this sign-in; no password is stored.');
        runCheck();
        break;
      case 'expired':
        codeOver('The code expired before anyone signed in with it.');
        break;
      case 'declined':
        codeOver('The sign-in was declined on Microsoft\'s page.');
        break;
      default:
        codeOver((v.error || 'The sign-in did not work.') + ' ' + (v.fix || ''));
    }
  }

  function pollSoon() {
    stopPolling();
    polling = setTimeout(function () {
      polling = null;
      call('/api/device/status').then(function (res) {
        if (sessionEnded(res)) return;
        if (res.status !== 200) { codeOver((res.body.error || 'Refused.') + ' ' + (res.body.fix || '')); return; }
        onView(res.body);
      }, pollSoon);
    }, 2000);
  }

  function startCode() {
    stopPolling();
    renderChecks({ checks: [] });
    show('step-code');
    codeShown(null);
    $('code-retry').hidden = true;
    say($('code-state'), 'Asking Microsoft for a code…');
    call('/api/device/start', values()).then(function (res) {
      if (sessionEnded(res)) return;
      if (res.status !== 200) { codeOver((res.body.error || 'Refused.') + ' ' + (res.body.fix || '')); return; }
      onView(res.body);
    }, function () { codeOver('The screen cannot be reached. Are you on the same network?'); });
  }

  $('code-retry').addEventListener('click', startCode);

  function selectCode() {
    var range = document.createRange();
    range.selectNodeContents($('code'));
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try { return document.execCommand('copy'); } catch (e) { return false; }
  }

  $('code').addEventListener('click', function () {
    var text = $('code').textContent;
    function done(ok) { say($('code-copied'), ok ? 'Copied: paste it on Microsoft\'s page.' : 'Hold the code to copy it.'); }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(selectCode()); });
    } else {
      done(selectCode());
    }
  });

  // ------------------------------------------------------------------ reports
  function loadReports() {
    show('step-reports');
    var box = $('catalog');
    box.textContent = 'Listing the reports this account can see…';
    call('/api/reports').then(function (res) {
      if (sessionEnded(res)) return;
      while (box.firstChild) box.removeChild(box.firstChild);
      if (res.status !== 200) {
        box.textContent = (res.body.error || 'Refused.') + ' ' + (res.body.fix || '');
        return;
      }
      (res.body.workspaces || []).forEach(function (w) {
        var ws = document.createElement('div');
        ws.className = 'ws';
        var h = document.createElement('h3');
        h.textContent = w.name;
        ws.appendChild(h);
        (w.reports || []).forEach(function (r) {
          ws.appendChild(item(w, { report: r.id, name: r.name,
            pages: (r.pages || []).map(function (p) { return p.displayName || p.display_name || p.name; }) }));
        });
        (w.dashboards || []).forEach(function (d) {
          ws.appendChild(item(w, { dashboard: d.id, name: d.displayName || d.display_name, pages: [] }));
        });
        box.appendChild(ws);
      });
    });
  }

  function item(w, entry) {
    var label = document.createElement('label');
    label.className = 'item';
    var box = document.createElement('input');
    box.type = 'checkbox';
    box.setAttribute('data-workspace', w.id);
    if (entry.report) box.setAttribute('data-report', entry.report);
    if (entry.dashboard) box.setAttribute('data-dashboard', entry.dashboard);
    label.appendChild(box);
    var text = document.createElement('span');
    text.textContent = entry.name + (entry.dashboard ? ' (dashboard)' : '');
    if (entry.pages.length) {
      var small = document.createElement('small');
      small.textContent = entry.pages.length + (entry.pages.length === 1 ? ' page: ' : ' pages: ') + entry.pages.join(', ');
      text.appendChild(small);
    }
    label.appendChild(text);
    return label;
  }

  $('save').addEventListener('click', function () {
    var seconds = parseInt($('seconds').value, 10) || 30;
    var items = [];
    Array.prototype.forEach.call(document.querySelectorAll('#catalog input:checked'), function (b) {
      var it = { workspace: b.getAttribute('data-workspace'), seconds: seconds, pages: [] };
      if (b.getAttribute('data-report')) it.report = b.getAttribute('data-report');
      if (b.getAttribute('data-dashboard')) it.dashboard = b.getAttribute('data-dashboard');
      items.push(it);
    });
    if (!items.length) { say($('save-msg'), 'Tick at least one report.', true); return; }
    $('save').disabled = true;
    say($('save-msg'), 'Saving…');
    call('/api/save', { items: items }).then(function (res) {
      if (sessionEnded(res)) return;
      if (res.status === 200 && res.body.ok) {
        show('step-done');
        return;
      }
      $('save').disabled = false;
      say($('save-msg'), (res.body.error || 'Not saved.') + ' ' + (res.body.fix || ''), true);
    });
  });
})();
