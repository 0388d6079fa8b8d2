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

  function show(step) {
    ['step-pin', 'step-values', 'step-reports', 'step-done'].forEach(function (s) {
      $(s).hidden = s !== step && !(step === 'step-reports' && s === 'step-values');
    });
  }

  function sessionEnded(res) {
    if (res.status !== 401) return false;
    csrf = '';
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

  $('values-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var btn = ev.target.querySelector('button');
    btn.disabled = true;
    btn.textContent = 'Checking…';
    renderChecks({ checks: [] });
    call('/api/check', values()).then(function (res) {
      btn.disabled = false;
      btn.textContent = 'Check';
      if (sessionEnded(res)) return;
      renderChecks(res.body);
      if (res.body.ok) loadReports();
    }, function () { btn.disabled = false; btn.textContent = 'Check'; });
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
