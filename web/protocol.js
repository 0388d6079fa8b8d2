/* pbikiosk player: pure helpers (no DOM, no SDK).
 *
 * Loaded as a classic script before player.js; it defines one global, `PbikioskProtocol`.
 * The node tests load the same file with `vm` and test these functions directly.
 *
 * Never put a token value into an error string: validation errors name fields, never values.
 */
(function (root) {
  'use strict';

  var PROTOCOL_VERSION = 1;

  // Field specs for core → page messages. Each field: [kind, required].
  // kinds: 'string' (non-empty), 'string?' (string or null), 'enum:a|b', 'text?' (string or null, may be empty),
  //        'screen' (status screen object), 'facts' (array of [label, value] pairs).
  var CORE_MESSAGES = {
    starting: { activity: 'string', facts: 'facts' },
    prepare: {
      key: 'string', kind: 'enum:report|dashboard', id: 'string', group_id: 'opt:string?',
      embed_url: 'string', access_token: 'string', token_type: 'enum:aad|embed',
      page: 'opt:string?', bookmark: 'opt:string?',
      report_layout: 'opt:enum:auto|landscape|portrait|fit_width'
    },
    show: { key: 'string' },
    set_page: { key: 'string', page: 'string' },
    set_token: { access_token: 'string', key: 'opt:string' },
    refresh: { key: 'string' },
    reload: { key: 'string' },
    discard: { key: 'string' },
    status: { screen: 'screen' },
    hide_status: {},
    badge: { text: 'text?' },
    screen_power: { power: 'enum:on|off' }
  };

  function isPlainObject(x) {
    return x !== null && typeof x === 'object' && !Array.isArray(x);
  }

  function checkField(name, spec, value) {
    var optional = spec.indexOf('opt:') === 0;
    if (optional) spec = spec.slice(4);
    if (value === undefined) return optional ? null : 'missing field "' + name + '"';
    if (spec === 'string') {
      return (typeof value === 'string' && value.length > 0) ? null : 'field "' + name + '" must be a non-empty string';
    }
    if (spec === 'string?') {
      return (value === null || (typeof value === 'string' && value.length > 0)) ? null
        : 'field "' + name + '" must be a non-empty string or null';
    }
    if (spec === 'text?') {
      return (value === null || typeof value === 'string') ? null : 'field "' + name + '" must be a string or null';
    }
    if (spec.indexOf('enum:') === 0) {
      var allowed = spec.slice(5).split('|');
      return allowed.indexOf(value) >= 0 ? null : 'field "' + name + '" must be one of ' + allowed.join(', ');
    }
    if (spec === 'screen') {
      var err = validateScreen(value);
      return err ? 'field "screen": ' + err : null;
    }
    if (spec === 'facts') {
      var ferr = validateFacts(value);
      return ferr ? 'field "' + name + '": ' + ferr : null;
    }
    return 'internal: unknown spec for "' + name + '"';
  }

  /** Label/value pairs; the error (if any) starts after the field's name: '" must be…' or '[2]" must…'. */
  function validateFacts(facts) {
    if (!Array.isArray(facts)) return '" must be an array of [label, value] pairs';
    for (var j = 0; j < facts.length; j++) {
      var f = facts[j];
      if (!Array.isArray(f) || f.length !== 2 || typeof f[0] !== 'string' ||
          (typeof f[1] !== 'string' && typeof f[1] !== 'number')) {
        return '[' + j + ']" must be a [label, value] pair of strings';
      }
    }
    return null;
  }

  function validateScreen(s) {
    if (!isPlainObject(s)) return 'must be an object';
    var strings = ['problem', 'title', 'cause', 'fix'];
    for (var i = 0; i < strings.length; i++) {
      if (typeof s[strings[i]] !== 'string') return '"' + strings[i] + '" must be a string';
    }
    if (s.facts !== undefined && s.facts !== null) {
      var err = validateFacts(s.facts);
      if (err) return '"facts' + err;
    }
    if (s.sign_in !== undefined && s.sign_in !== null) {
      if (!isPlainObject(s.sign_in)) return '"sign_in" must be an object or null';
      var si = ['user_code', 'verification_uri', 'expires'];
      for (var k = 0; k < si.length; k++) {
        if (typeof s.sign_in[si[k]] !== 'string') return '"sign_in.' + si[k] + '" must be a string';
      }
    }
    if (s.setup !== undefined && s.setup !== null) {
      if (!isPlainObject(s.setup)) return '"setup" must be an object or null';
      var su = ['url', 'pin', 'fingerprint'];
      for (var m = 0; m < su.length; m++) {
        if (typeof s.setup[su[m]] !== 'string') return '"setup.' + su[m] + '" must be a string';
      }
    }
    if (s.next_attempt !== undefined && s.next_attempt !== null && typeof s.next_attempt !== 'string') {
      return '"next_attempt" must be a string or null';
    }
    return null;
  }

  /** Validate one core → page message. Returns {ok:true} or {ok:false, error} (error names fields only). */
  function validateCoreMessage(msg) {
    if (!isPlainObject(msg)) return { ok: false, error: 'message must be a JSON object' };
    if (msg.v !== PROTOCOL_VERSION) return { ok: false, error: 'unsupported protocol version (want v=1)' };
    if (typeof msg.type !== 'string') return { ok: false, error: 'missing "type"' };
    var spec = CORE_MESSAGES[msg.type];
    if (!spec) return { ok: false, error: 'unknown message type "' + String(msg.type).slice(0, 40) + '"' };
    for (var name in spec) {
      if (Object.prototype.hasOwnProperty.call(spec, name)) {
        var err = checkField(name, spec[name], msg[name]);
        if (err) return { ok: false, error: msg.type + ': ' + err };
      }
    }
    return { ok: true };
  }

  /** Build a page → core message: adds v and type. */
  function outgoing(type, fields) {
    var m = { v: PROTOCOL_VERSION, type: type };
    if (fields) for (var k in fields) if (Object.prototype.hasOwnProperty.call(fields, k)) m[k] = fields[k];
    return m;
  }

  /** Replace every known secret (token) in a string with "[redacted]". Short strings are not treated as secrets. */
  function redact(text, secrets) {
    var s = String(text);
    if (!secrets) return s;
    secrets.forEach(function (secret) {
      if (typeof secret === 'string' && secret.length >= 8) s = s.split(secret).join('[redacted]');
    });
    // Belt and braces: anything that looks like a JWT (three base64url parts, long) is never shown.
    return s.replace(/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, '[redacted]');
  }

  /** Deep-copy a JSON-ish value with every string passed through redact(). Depth-limited; drops functions. */
  function redactDeep(value, secrets, depth) {
    depth = depth || 0;
    if (depth > 6) return '[…]';
    if (typeof value === 'string') return redact(value, secrets);
    if (value === null || typeof value === 'number' || typeof value === 'boolean') return value;
    if (Array.isArray(value)) return value.slice(0, 50).map(function (x) { return redactDeep(x, secrets, depth + 1); });
    if (typeof value === 'object') {
      var out = {};
      for (var k in value) {
        if (!Object.prototype.hasOwnProperty.call(value, k)) continue;
        if (/token/i.test(k) && typeof value[k] === 'string') { out[k] = '[redacted]'; continue; }
        out[k] = redactDeep(value[k], secrets, depth + 1);
      }
      return out;
    }
    return undefined;
  }

  function pad2(n) { return (n < 10 ? '0' : '') + n; }

  /** "2026-11-26T14:05:00Z" → "14:05" (local time); anything else is shown as given. */
  function formatNextAttempt(s) {
    if (typeof s !== 'string' || !s) return null;
    if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(s)) {
      var d = new Date(s);
      if (!isNaN(d.getTime())) return pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    }
    return s;
  }

  /**
   * The view model of the status screen: everything the DOM code needs, already cleaned.
   * tone: 'setup' for a kiosk that is simply not configured yet, 'problem' otherwise (both calm).
   */
  function statusScreenModel(screen, secrets) {
    var r = function (x) { return redact(x == null ? '' : String(x), secrets).trim(); };
    var facts = (Array.isArray(screen.facts) ? screen.facts : [])
      .filter(function (f) { return Array.isArray(f) && f.length === 2; })
      .map(function (f) { return [r(f[0]), r(f[1])]; })
      .filter(function (f) { return f[0] !== '' || f[1] !== ''; });
    var problem = r(screen.problem) || 'unknown';
    var next = formatNextAttempt(screen.next_attempt);
    return {
      problem: problem,
      tone: problem === 'not_configured' ? 'setup' : 'problem',
      title: r(screen.title) || 'This screen needs attention',
      cause: r(screen.cause),
      fix: r(screen.fix),
      facts: facts,
      nextAttempt: next ? 'Next attempt at ' + redact(next, secrets) : null,
      signIn: signInModel(screen.sign_in, r),
      setup: problem === 'not_configured' ? setupModel(screen.setup, r) : null
    };
  }

  /**
   * The not-configured screen's phone setup part: the page's address (and its QR image, an SVG
   * data URI only), the PIN and the certificate fingerprint; null when the page is closed.
   */
  function setupModel(s, r) {
    if (!s || typeof s !== 'object') return null;
    var url = r(s.url), pin = r(s.pin);
    if (!url || !pin) return null;
    var qr = typeof s.qr === 'string' && s.qr.indexOf('data:image/svg+xml;base64,') === 0 ? s.qr : null;
    return { url: url, pin: pin, fingerprint: r(s.fingerprint), qr: qr };
  }

  /**
   * The sign-in screen's part: the code, the address, its QR image and until when the code works;
   * null when the screen is not a sign-in screen. The QR image is used only as an SVG data URI
   * (an image from anywhere else would be a way out of the page).
   */
  function signInModel(s, r) {
    if (!s || typeof s !== 'object') return null;
    var code = r(s.user_code), uri = r(s.verification_uri);
    if (!code || !uri) return null;
    var qr = typeof s.qr === 'string' && s.qr.indexOf('data:image/svg+xml;base64,') === 0 ? s.qr : null;
    var expires = r(s.expires);
    var left = typeof s.seconds_left === 'number' && isFinite(s.seconds_left) && s.seconds_left >= 0
      ? Math.floor(s.seconds_left) : null;
    return { code: code, uri: uri, qr: qr, expires: expires ? 'This code works until ' + expires : '',
      secondsLeft: left };
  }

  /** The sign-in code's time left, as the screen counts it down: "(14:05 left)". */
  function timeLeft(seconds) {
    if (seconds == null) return '';
    if (seconds <= 0) return ' (a new code is on its way)';
    return ' (' + Math.floor(seconds / 60) + ':' + pad2(seconds % 60) + ' left)';
  }

  /** The start screen's view model: its line and the device facts under it, cleaned. */
  function startScreenModel(msg, secrets) {
    var r = function (x) { return redact(x == null ? '' : String(x), secrets).trim(); };
    var facts = (Array.isArray(msg.facts) ? msg.facts : [])
      .filter(function (f) { return Array.isArray(f) && f.length === 2; })
      .map(function (f) { return [r(f[0]), r(f[1])]; })
      .filter(function (f) { return f[1] !== ''; });
    return { activity: r(msg.activity) || 'Starting…', facts: facts };
  }

  /**
   * The powerbi-client settings for a report's layout (`report_layout` of `prepare`).
   * portrait: the page is taller than wide. hasMobileLayout: the report page (as the SDK says)
   * has a mobile layout; null before it is known. Returns {layoutType, displayOption} as names
   * of models.LayoutType / models.DisplayOption; the caller maps them to the SDK's values.
   */
  function reportLayout(setting, portrait, hasMobileLayout) {
    var normal = { layoutType: 'Custom', displayOption: 'FitToPage' };
    var mobile = { layoutType: 'MobilePortrait', displayOption: null };
    var fitWidth = { layoutType: 'Custom', displayOption: 'FitToWidth' };
    switch (setting) {
      case 'landscape': return normal;
      case 'fit_width': return fitWidth;
      case 'portrait': return hasMobileLayout === false ? fitWidth : mobile;
      default: // auto (and anything older cores send without the field)
        if (!portrait) return normal;
        return hasMobileLayout === false ? fitWidth : mobile;
    }
  }

  root.PbikioskProtocol = {
    PROTOCOL_VERSION: PROTOCOL_VERSION,
    CORE_MESSAGES: CORE_MESSAGES,
    validateCoreMessage: validateCoreMessage,
    validateScreen: validateScreen,
    outgoing: outgoing,
    redact: redact,
    redactDeep: redactDeep,
    formatNextAttempt: formatNextAttempt,
    statusScreenModel: statusScreenModel,
    timeLeft: timeLeft,
    startScreenModel: startScreenModel,
    reportLayout: reportLayout
  };
})(typeof window !== 'undefined' ? window : globalThis);
