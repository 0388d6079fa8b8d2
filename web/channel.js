/* pbikiosk: the page's authenticated channel to the core.
 *
 * Not loaded by index.html: the core injects this script into the TOP FRAME ONLY, before any of
 * the page's own scripts run, with this launch's secret in place of the placeholder below.
 * WebKit's IPC handler exists in every frame, report frames and their custom visuals included,
 * and the core cannot tell which frame posted a message; only messages carrying the secret are
 * accepted. The secret lives in this closure alone: the one global it defines hands out the
 * sender once (player.js takes it at start) and deletes itself, so no other script finds it later,
 * and a cross-origin frame cannot read the top frame at all.
 *
 * Wire format, one JSON string per message: {"auth": "<secret>", "message": {...}}.
 */
(function () {
  'use strict';
  var secret = '__PBIKIOSK_CHANNEL_SECRET__';
  var handlers = window.webkit && window.webkit.messageHandlers;
  var ipc = handlers && handlers.ipc;
  if (!ipc || typeof ipc.postMessage !== 'function') return;
  // Captured now: a script that later replaces JSON.stringify must not see the secret.
  var stringify = JSON.stringify;
  function send(msg) {
    ipc.postMessage(stringify({ auth: secret, message: msg }));
  }
  Object.defineProperty(window, '__pbikioskChannel', {
    configurable: true,
    enumerable: false,
    value: function () {
      delete window.__pbikioskChannel;
      return send;
    }
  });
})();
