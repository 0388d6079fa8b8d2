/* The baseline a user would build instead of pbikiosk: Chromium in --kiosk mode on this page, the
 * same powerbi-client (web/vendor/powerbi.min.js), one token fetched once by the "token script"
 * (serve.mjs), and the simple rotation: every N seconds, reset the container and powerbi.embed the
 * next report into it.
 *
 * Measures what scripts/bench.sh compares with pbikiosk, and POSTs it to /report:
 *   {type:"rendered", n, epoch_ms}   every `rendered` event (epoch ms, for start -> first render)
 *   {type:"switch", n, gap_ms}       last frame with the old report -> first frame after the new
 *                                    one's `rendered` event (requestAnimationFrame timestamps)
 */
(function () {
  'use strict';
  var models = window['powerbi-client'].models;
  var container = document.getElementById('report');

  function report(msg) {
    msg.epoch_ms = performance.timeOrigin + performance.now();
    fetch('/report', { method: 'POST', body: JSON.stringify(msg), keepalive: true }).catch(function () {});
  }

  fetch('/config').then(function (r) { return r.json(); }).then(function (cfg) {
    var n = 0;
    var lastOldFrame = null;

    function embed(r) {
      var embed = powerbi.embed(container, {
        type: 'report', id: r.id, embedUrl: r.embedUrl, groupId: r.groupId,
        accessToken: cfg.token, tokenType: models.TokenType.Aad,
        permissions: models.Permissions.Read, viewMode: models.ViewMode.View,
        settings: { panes: { filters: { visible: false }, pageNavigation: { visible: false } } }
      });
      var k = n;
      embed.on('rendered', function () {
        if (k !== n) return;
        report({ type: 'rendered', n: k });
        if (lastOldFrame !== null) {
          var old = lastOldFrame;
          lastOldFrame = null;
          requestAnimationFrame(function (firstNew) {
            report({ type: 'switch', n: k, gap_ms: Math.round((firstNew - old) * 10) / 10 });
          });
        }
      });
      embed.on('error', function (ev) {
        report({ type: 'error', n: k, message: String((ev && ev.detail && ev.detail.message) || 'error') });
      });
    }

    embed(cfg.reports[0]);
    setInterval(function () {
      requestAnimationFrame(function (t) {
        // This frame still shows the old report; from here the container is torn down.
        lastOldFrame = t;
        n += 1;
        powerbi.reset(container);
        embed(cfg.reports[n % cfg.reports.length]);
      });
    }, cfg.seconds * 1000);
  });
})();
