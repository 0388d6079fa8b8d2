#!/usr/bin/env bash
# install.sh — turn a fresh Raspberry Pi OS Lite (Bookworm, 64-bit) or Debian 12 machine into a
# pbikiosk screen. Run as root. Idempotent: a second run with the same flags changes nothing.
# `install.sh --help` lists every flag; docs/install-raspberry-pi.md walks through it.
set -euo pipefail

PROG=install.sh
# PBIKIOSK_INSTALL_*: only scripts/test-units.sh sets them, to run the installer on a scratch
# folder with stub commands (sudo does not pass them on).
CONF_DIR=${PBIKIOSK_INSTALL_CONF_DIR:-/etc/pbikiosk}
CONF=$CONF_DIR/pbikiosk.toml
# Secrets outside /etc: WebKit's web-process sandbox shows all of /etc (read-only) to report
# content, and nothing of /var/lib but what it needs.
SECRETS_DIR=${PBIKIOSK_INSTALL_SECRETS_DIR:-/var/lib/pbikiosk-secrets}
SECRET=$SECRETS_DIR/client-secret
PASSWORD=$SECRETS_DIR/password
CERT=$SECRETS_DIR/client-certificate.pem
DROPIN_DIR=/etc/systemd/system/pbikiosk.service.d
DROPIN=$DROPIN_DIR/50-install.conf
GRUB_SNIPPET=/etc/default/grub.d/pbikiosk.cfg
# Installed in step 1; edits and checks the config from step 5 on (`pbikiosk config --help`).
PBK=${PBIKIOSK_INSTALL_BIN:-/usr/bin/pbikiosk}
SYSTEMD_DIR=${PBIKIOSK_INSTALL_SYSTEMD_DIR:-/run/systemd/system}

usage() {
  cat <<'EOF'
Usage: sudo install.sh [OPTIONS]

Turns a fresh Raspberry Pi OS Lite (Bookworm, 64-bit) or Debian 12 machine into a pbikiosk
screen: installs the pbikiosk package and what it needs (cage, seatd, Xwayland, fonts),
enables pbikiosk.service, disables the login prompt (getty) on tty1, keeps the console and the
HDMI output from blanking, and writes the Power BI settings into /etc/pbikiosk and the
secrets into /var/lib/pbikiosk-secrets (out of sight of the web sandbox) with the right owners
and modes (root:pbikiosk, 0640); secrets an older install kept in /etc/pbikiosk move there. Run it again at any time: it only changes what
differs from what you asked for, and says what it changed.

Package:
  --deb FILE                 Install this pbikiosk .deb. Default: the newest pbikiosk_*_ARCH.deb
                             next to this script, else `apt-get install pbikiosk`.

Credentials (asked for on the terminal when missing, unless --yes):
  --method METHOD            How the screen signs in (README: a section per method):
                               password           a service account and its password (default;
                                                  needs all of the flags below)
                               service_principal  the app itself with Power BI embed tokens
                                                  (tenant, client id, secret or certificate)
                               device_code        a person signs in on a phone with a code the
                                                  screen shows (tenant and client id only)
  --tenant TENANT            Tenant id (GUID) or domain, e.g. contoso.onmicrosoft.com.
  --client-id GUID           Application (client) id of the app registration.
  --client-secret-file FILE  File holding the client secret (one line); "-" reads it from
                             standard input. Copied to /var/lib/pbikiosk-secrets/client-secret.
  --client-certificate-file FILE
                             Instead of a client secret: a PEM file with the app's certificate
                             and its private key. Copied to /var/lib/pbikiosk-secrets/client-certificate.pem.
  --username UPN             The service account, e.g. svc-signage@contoso.onmicrosoft.com.
  --password-file FILE       File holding the account's password (one line); "-" reads it
                             from standard input. Copied to /var/lib/pbikiosk-secrets/password.
  --workspace GUID           With --report: add a first [[playlist]] entry when there is none.
  --report GUID              The report to show (the GUID after /reports/ in its address).

Display:
  --rotation DEGREES         0, 90, 180 or 270: turn the picture clockwise (portrait screens).
                             Written to /etc/systemd/system/pbikiosk.service.d/50-install.conf.
  --mode WxH[@HZ]            Fixed output resolution, e.g. 1920x1080@60. Set on the kernel
                             command line (video=OUTPUT:WxH@HZD), which also forces the output
                             on, so a TV switched on after boot gets the picture at once.
  --output NAME              Connector for --mode (default HDMI-A-1; a Pi's second port is
                             HDMI-A-2). Remove a fixed mode with --mode auto.

Behaviour:
  --no-start                 Set everything up but do not start the kiosk now (next boot).
  --no-boot-config           Leave the kernel command line alone (console blanking, cursor,
                             --mode are then not applied).
  --force                    Also run when a display manager (desktop login) is enabled.
  -y, --yes                  Never ask: use only the flags (for scripts and image builds).
  -h, --help                 Show this help and exit.

After it: `sudo pbikiosk check` tests the sign-in and every report; the screen follows by itself.
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
# Temporary files (next to the files they replace); whatever happens, none is left behind.
TMPS=()
trap 'rm -f "${TMPS[@]}"' EXIT
say() { echo "$PROG: $*"; }
CHANGES=0
changed() { CHANGES=$((CHANGES + 1)); say "changed: $*"; }

DEB="" METHOD="" TENANT="" CLIENT_ID="" SECRET_SRC="" CERT_SRC="" USERNAME="" PASSWORD_SRC=""
WORKSPACE="" REPORT=""
ROTATION="" MODE="" OUTPUT="HDMI-A-1" START=1 BOOT_CONFIG=1 FORCE=0 ASK=1

need_arg() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }
while [ $# -gt 0 ]; do
  case $1 in
  --deb) need_arg "$@"; DEB=$2; shift 2 ;;
  --method) need_arg "$@"; METHOD=$2; shift 2 ;;
  --tenant) need_arg "$@"; TENANT=$2; shift 2 ;;
  --client-id) need_arg "$@"; CLIENT_ID=$2; shift 2 ;;
  --client-secret-file) need_arg "$@"; SECRET_SRC=$2; shift 2 ;;
  --client-certificate-file) need_arg "$@"; CERT_SRC=$2; shift 2 ;;
  --username) need_arg "$@"; USERNAME=$2; shift 2 ;;
  --password-file) need_arg "$@"; PASSWORD_SRC=$2; shift 2 ;;
  --workspace) need_arg "$@"; WORKSPACE=$2; shift 2 ;;
  --report) need_arg "$@"; REPORT=$2; shift 2 ;;
  --rotation) need_arg "$@"; ROTATION=$2; shift 2 ;;
  --mode) need_arg "$@"; MODE=$2; shift 2 ;;
  --output) need_arg "$@"; OUTPUT=$2; shift 2 ;;
  --no-start) START=0; shift ;;
  --no-boot-config) BOOT_CONFIG=0; shift ;;
  --force) FORCE=1; shift ;;
  -y | --yes) ASK=0; shift ;;
  -h | --help) usage; exit 0 ;;
  *) die "unknown option '$1' (see --help)" ;;
  esac
done

# ---- check the flags' shape before touching anything (again after the questions); the values
# themselves are checked by `pbikiosk config set` with the player's own rules before it writes.
GUID_RE='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
check_guid() { [[ $2 =~ $GUID_RE ]] || die "$1 '$2' is not a GUID (like 00000000-0000-0000-0000-000000000000)"; }
validate_ids() {
  [ "$TENANT" != common ] || die "--tenant common cannot sign in a service account: use your tenant id or domain"
  [ -z "$CLIENT_ID" ] || check_guid --client-id "$CLIENT_ID"
  [ -z "$WORKSPACE" ] || check_guid --workspace "$WORKSPACE"
  [ -z "$REPORT" ] || check_guid --report "$REPORT"
  { [ -z "$WORKSPACE" ] && [ -z "$REPORT" ]; } || { [ -n "$WORKSPACE" ] && [ -n "$REPORT" ]; } || die "--workspace and --report go together"
}
# What each sign-in method has no use for is refused now, as the player would refuse it later.
validate_method() {
  case $METHOD in
  "" | password) ;;
  service_principal)
    [ -z "$USERNAME$PASSWORD_SRC" ] || die "--method service_principal signs in as the app: leave out --username and --password-file"
    ;;
  device_code)
    [ -z "$SECRET_SRC$CERT_SRC" ] || die "--method device_code is a public client: leave out --client-secret-file and --client-certificate-file"
    [ -z "$USERNAME$PASSWORD_SRC" ] || die "--method device_code: a person signs in on the screen; leave out --username and --password-file"
    ;;
  *) die "--method $METHOD: use password, service_principal or device_code" ;;
  esac
  [ -z "$SECRET_SRC" ] || [ -z "$CERT_SRC" ] || die "use either --client-secret-file or --client-certificate-file, not both"
}
validate_ids
validate_method
[ -z "$CERT_SRC" ] || [ -r "$CERT_SRC" ] || die "--client-certificate-file $CERT_SRC: no such file, or not readable"
[ "$SECRET_SRC" != - ] || [ "$PASSWORD_SRC" != - ] || die "only one of --client-secret-file and --password-file can be '-'"
case $ROTATION in "" | 0 | 90 | 180 | 270) ;; *) die "--rotation $ROTATION: use 0, 90, 180 or 270" ;; esac
[ -z "$MODE" ] || [ "$MODE" = auto ] || [[ $MODE =~ ^[0-9]{3,5}x[0-9]{3,5}(@[0-9]{2,3})?$ ]] || die "--mode $MODE: use WIDTHxHEIGHT or WIDTHxHEIGHT@HZ, e.g. 1920x1080@60, or auto"
[[ $OUTPUT =~ ^[A-Za-z0-9-]+$ ]] || die "--output $OUTPUT: a connector name such as HDMI-A-1"
[ -z "$DEB" ] || [ -f "$DEB" ] || die "--deb $DEB: no such file"
[ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0 ...)"

SYSTEMD_RUNNING=0
[ -d "$SYSTEMD_DIR" ] && SYSTEMD_RUNNING=1
ARCH=$(dpkg --print-architecture)

if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ "$codename" = bookworm ] || say "note: made for Debian 12 / Raspberry Pi OS Bookworm; this is '${codename:-unknown}'"
fi
if [ "$FORCE" = 0 ] && [ -e /etc/systemd/system/display-manager.service ]; then
  die "a display manager ($(readlink -f /etc/systemd/system/display-manager.service)) owns the screen; pbikiosk is for console-only installs (Raspberry Pi OS Lite). Disable it or pass --force."
fi

# ---- 1. packages
installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "$@" >/dev/null
}

if [ -z "$DEB" ]; then
  here=$(cd "$(dirname "$0")" && pwd)
  for f in "$here"/pbikiosk_*_"$ARCH".deb; do [ -e "$f" ] && DEB=$f; done
fi
if [ -n "$DEB" ]; then
  [ "$(dpkg-deb -f "$DEB" Package)" = pbikiosk ] || die "$DEB is not a pbikiosk package"
  deb_arch=$(dpkg-deb -f "$DEB" Architecture)
  [ "$deb_arch" = "$ARCH" ] || die "$DEB is for $deb_arch, this machine is $ARCH"
  want=$(dpkg-deb -f "$DEB" Version)
  if [ "$(installed_version pbikiosk)" != "$want" ]; then
    apt_install "$(realpath "$DEB")"
    changed "installed pbikiosk $want from $DEB"
  fi
elif [ -z "$(installed_version pbikiosk)" ]; then
  apt_install pbikiosk
  changed "installed pbikiosk from the package archive"
fi
extras=(cage seatd xwayland fonts-dejavu-core fonts-liberation2)
missing=()
for p in "${extras[@]}"; do [ -n "$(installed_version "$p")" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
  changed "installed ${missing[*]}"
fi

# ---- 2. units: the kiosk on, the login prompt on tty1 off
if [ "$(systemctl is-enabled getty@tty1.service 2>/dev/null || true)" = enabled ]; then
  systemctl disable --quiet getty@tty1.service
  changed "disabled the login prompt on tty1 (getty@tty1.service)"
fi
for unit in pbikiosk.service pbikiosk-recover.timer pbikiosk-import.service pbikiosk-hotplug.service; do
  if [ "$(systemctl is-enabled "$unit" 2>/dev/null || true)" != enabled ]; then
    systemctl enable --quiet "$unit"
    changed "enabled $unit"
  fi
done
# seatd hands the screen and input devices to cage (the kiosk's user is in group video).
if [ "$(systemctl is-enabled seatd.service 2>/dev/null || true)" != enabled ]; then
  systemctl enable --quiet seatd.service
  changed "enabled seatd.service"
fi

# write_if_changed FILE MODE OWNER:GROUP — content on stdin; returns 0 when it wrote, 1 when
# the file was already so. Call it with a redirection, not at the end of a pipe: a failure must
# stop the installer, and in a pipe it would only end a subshell.
write_if_changed() {
  local file=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp "$(dirname "$file")/.install.XXXXXX") || die "cannot write in $(dirname "$file")"
  TMPS+=("$tmp")
  { cat >"$tmp" && chmod "$mode" "$tmp" && chown "$owner" "$tmp"; } || die "cannot write $file"
  if [ -f "$file" ] && cmp -s "$tmp" "$file" &&
    [ "$(stat -c '%a %U:%G' "$file")" = "$(stat -c '%a %U:%G' "$tmp")" ]; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$file" || die "cannot replace $file"
  return 0
}

# ---- 3. display: rotation in a drop-in (only when asked)
RESTART=0
if [ -n "$ROTATION" ]; then
  mkdir -p "$DROPIN_DIR"
  if write_if_changed "$DROPIN" 0644 root:root < <(
    echo "# Written by install.sh --rotation; run it again to change, or edit by hand."
    echo "[Service]"
    echo "Environment=PBIKIOSK_ROTATION=$ROTATION"
  ); then
    changed "display settings in $DROPIN (rotation $ROTATION)"
    RESTART=1
  fi
fi

# ---- 4. boot: no console blanking, no console cursor, optional fixed mode
boot_tokens() { # current kernel options file content on stdin -> wanted content on stdout
  local line tok out=()
  line=$(tr '\n' ' ')
  for tok in $line; do
    case $tok in
    consoleblank=* | vt.global_cursor_default=*) continue ;;
    "video=$OUTPUT:"*) if [ -n "$MODE" ]; then continue; fi ;;
    esac
    out+=("$tok")
  done
  out+=(consoleblank=0 vt.global_cursor_default=0)
  if [ -n "$MODE" ] && [ "$MODE" != auto ]; then
    local m=$MODE
    [[ $m == *@* ]] || m="$m@60"
    out+=("video=$OUTPUT:${m}D")
  fi
  echo "${out[*]}"
}
if [ "$BOOT_CONFIG" = 1 ]; then
  cmdline=""
  for f in /boot/firmware/cmdline.txt /boot/cmdline.txt; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then cmdline=$f; break; fi
  done
  if [ -n "$cmdline" ]; then
    # Raspberry Pi: one line of kernel options read by the firmware.
    cur=$(cat "$cmdline")
    cmode=$(stat -c %a "$cmdline")
    cowner=$(stat -c %U:%G "$cmdline")
    if write_if_changed "$cmdline" "$cmode" "$cowner" < <(echo "$cur" | boot_tokens); then
      changed "kernel options in $cmdline (takes effect at the next boot)"
    fi
  elif [ -d /etc/default/grub.d ] || [ -f /etc/default/grub ]; then
    mkdir -p /etc/default/grub.d
    # shellcheck disable=SC2016
    cur=$(sed -n 's/^GRUB_CMDLINE_LINUX_DEFAULT="\$GRUB_CMDLINE_LINUX_DEFAULT \(.*\)"$/\1/p' "$GRUB_SNIPPET" 2>/dev/null || true)
    want=$(echo "$cur" | boot_tokens)
    if write_if_changed "$GRUB_SNIPPET" 0644 root:root < <(
      echo "# Written by pbikiosk's install.sh: no console blanking or cursor, fixed output mode."
      echo "GRUB_CMDLINE_LINUX_DEFAULT=\"\$GRUB_CMDLINE_LINUX_DEFAULT $want\""
    ); then
      changed "kernel options in $GRUB_SNIPPET (takes effect at the next boot)"
      if command -v update-grub >/dev/null; then update-grub 2>/dev/null || say "warning: update-grub failed; run it by hand"; fi
    fi
  else
    say "note: no /boot/firmware/cmdline.txt and no GRUB here: add consoleblank=0 vt.global_cursor_default=0 to the kernel options yourself"
  fi
  # Now, without a reboot (the kiosk covers the console anyway once it runs).
  if [ "$SYSTEMD_RUNNING" = 1 ] && [ -w /dev/tty1 ]; then
    setterm --term linux --blank 0 --powerdown 0 --cursor off >/dev/tty1 2>/dev/null || true
  fi
fi

# ---- 5. credentials
ask() { # ask VAR "prompt" [silent]
  local __v
  if [ "${3:-}" = silent ]; then read -r -s -p "$2: " __v; echo; else read -r -p "$2: " __v; fi
  printf -v "$1" '%s' "$__v"
}
conf_get() { "$PBK" --config "$CONF" config get "$1" 2>/dev/null; } # conf_get KEY -> value; 1 unset
configured() { # [auth] names the account; a file pbikiosk cannot read as TOML stops here
  local k rc
  for k in auth.tenant auth.client_id auth.username; do
    rc=0
    "$PBK" --config "$CONF" config get "$k" >/dev/null || rc=$?
    [ "$rc" -le 1 ] || die "$CONF cannot be read as a configuration (see above): correct it, then run me again"
    [ "$rc" -eq 1 ] || return 0
  done
  return 1
}
# conf_set WHAT KEY VALUE...: set keys in $CONF (checked by pbikiosk, written atomically, nothing
# written when refused); says "changed: WHAT" when the file changed.
conf_set() {
  local what=$1 before
  shift
  before=$(cksum <"$CONF")
  "$PBK" --config "$CONF" config set "$@" || die "$CONF was left as it was"
  [ "$(cksum <"$CONF")" = "$before" ] || changed "$what in $CONF"
}

# The method: the flag, else the configuration's, else the password grant. Switching an
# existing configuration to another method is left to a person: keys of the old method would
# have to go, and `config set` only sets.
CONF_METHOD=password
if configured; then CONF_METHOD=$(conf_get auth.method) || CONF_METHOD=password; fi
if [ -z "$METHOD" ] && [ "$ASK" = 1 ] && [ -t 0 ] && ! configured; then
  ask METHOD "Sign-in method: password, service_principal or device_code (Enter: password)"
  validate_method
fi
METHOD=${METHOD:-$CONF_METHOD}
validate_method
if configured && [ "$METHOD" != "$CONF_METHOD" ]; then
  die "$CONF signs in with method = \"$CONF_METHOD\": to switch to $METHOD, move $CONF away (sudo mv $CONF $CONF.old) and run me again, or edit its [auth] section by hand (README: a section per method)"
fi
has_secret() { [ -s "$SECRET" ] || [ -s "$CERT" ] || [ -n "$CERT_SRC" ]; }
if [ "$ASK" = 1 ] && [ -t 0 ]; then
  if ! configured || { [ "$METHOD" != device_code ] && ! has_secret; } || { [ "$METHOD" = password ] && [ ! -s "$PASSWORD" ]; }; then
    say "Power BI credentials (Enter keeps what is there; see docs/install-raspberry-pi.md)."
    [ -n "$TENANT" ] || conf_get auth.tenant >/dev/null || ask TENANT "Tenant id or domain"
    [ -n "$CLIENT_ID" ] || conf_get auth.client_id >/dev/null || ask CLIENT_ID "Application (client) id"
    if [ "$METHOD" != device_code ]; then
      [ -n "$SECRET_SRC" ] || has_secret || { ask s "Client secret (not shown)" silent; [ -z "$s" ] || SECRET_VALUE=$s; }
    fi
    if [ "$METHOD" = password ]; then
      [ -n "$USERNAME" ] || conf_get auth.username >/dev/null || ask USERNAME "Service account (user@domain)"
      [ -n "$PASSWORD_SRC" ] || [ -s "$PASSWORD" ] || { ask p "Password of the service account (not shown)" silent; [ -z "$p" ] || PASSWORD_VALUE=$p; }
    fi
  fi
  if [ -z "$WORKSPACE" ] && ! conf_get 'playlist[1].workspace' >/dev/null; then
    ask WORKSPACE "Workspace id of the first report (the GUID after /groups/; Enter to skip)"
    [ -z "$WORKSPACE" ] || ask REPORT "Report id (the GUID after /reports/)"
  fi
  validate_ids
fi

read_secret() { # read_secret SRC -> one line on stdout
  local v
  if [ "$1" = - ]; then IFS= read -r v || true; else
    [ -r "$1" ] || die "cannot read $1"
    [ "$(grep -c '' "$1")" -le 1 ] || die "$1 has more than one line: put only the secret in it"
    IFS= read -r v <"$1" || true
  fi
  v=${v%$'\r'}
  [ -n "$v" ] || die "the secret from $1 is empty"
  # The player refuses these in a secret file (an editor's byte order mark, a pasted space).
  [[ $v != $'\xef\xbb\xbf'* ]] || die "the secret from $1 starts with a byte order mark: save it as UTF-8 without BOM"
  [[ ! $v =~ ^[[:space:]]|[[:space:]]$ ]] || die "the secret from $1 has spaces or tabs before or after it: remove them"
  printf '%s' "$v"
}
[ -z "$SECRET_SRC" ] || SECRET_VALUE=$(read_secret "$SECRET_SRC")
[ -z "$PASSWORD_SRC" ] || PASSWORD_VALUE=$(read_secret "$PASSWORD_SRC")

getent group pbikiosk >/dev/null || die "the group pbikiosk does not exist: is the pbikiosk package installed?"
install -d -m 0750 -o root -g pbikiosk "$CONF_DIR"
install -d -m 0750 -o root -g pbikiosk "$SECRETS_DIR"
# An older install kept the secrets in $CONF_DIR, which the web sandbox shows: moved, the config
# following (copied first and removed last, so that a refused config change leaves both as
# they were; the running kiosk follows its config at once).
for name in client-secret password; do
  case $name in client-secret) key=auth.client_secret_file ;; *) key=auth.password_file ;; esac
  old=$CONF_DIR/$name new=$SECRETS_DIR/$name
  if [ "$CONF_DIR" != "$SECRETS_DIR" ] && [ -f "$old" ] && [ ! -L "$old" ] && [ ! -e "$new" ]; then
    cp -p "$old" "$new"
    if [ "$(conf_get "$key" || true)" = "$old" ]; then conf_set "the path of the $name file" "$key" "$new"; fi
    rm -f "$old"
    changed "moved $old to $new (out of the web sandbox's sight)"
  fi
done
# A running kiosk picks up a changed secret file by itself; it is restarted as well (step 6) so
# that a service that takes its secrets from systemd credentials, copied at start, gets them too.
SECRETS_CHANGED=0
if [ -n "${SECRET_VALUE:-}" ] &&
  write_if_changed "$SECRET" 0640 root:pbikiosk < <(printf '%s\n' "$SECRET_VALUE"); then
  changed "client secret in $SECRET"
  SECRETS_CHANGED=1
fi
if [ -n "${PASSWORD_VALUE:-}" ] &&
  write_if_changed "$PASSWORD" 0640 root:pbikiosk < <(printf '%s\n' "$PASSWORD_VALUE"); then
  changed "password in $PASSWORD"
  SECRETS_CHANGED=1
fi
unset SECRET_VALUE PASSWORD_VALUE
if [ -n "$CERT_SRC" ]; then
  # The player checks the certificate and key in full (`config set` below); here only that
  # this is the PEM file meant, not a certificate without its key.
  [ "$(wc -c <"$CERT_SRC")" -le 65536 ] || die "$CERT_SRC is larger than a certificate and key (64 KiB)"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$CERT_SRC" || die "$CERT_SRC holds no certificate (-----BEGIN CERTIFICATE-----): use the PEM file with the certificate and its private key"
  grep -q -- 'PRIVATE KEY-----' "$CERT_SRC" || die "$CERT_SRC holds no private key: put the certificate and its private key in one PEM file"
  if write_if_changed "$CERT" 0640 root:pbikiosk <"$CERT_SRC"; then
    changed "client certificate in $CERT"
    SECRETS_CHANGED=1
  fi
fi

# Keys in the config: tenant, client_id, username (+ the *_file keys pointing at the files).
auth=()
[ -z "$TENANT" ] || auth+=(auth.tenant "$TENANT")
[ -z "$CLIENT_ID" ] || auth+=(auth.client_id "$CLIENT_ID")
[ -z "$USERNAME" ] || auth+=(auth.username "$USERNAME")
if [ ${#auth[@]} -gt 0 ]; then
  if ! configured; then
    if [ -z "$TENANT" ] || [ -z "$CLIENT_ID" ] || { [ "$METHOD" = password ] && [ -z "$USERNAME" ]; }; then
      case $METHOD in
      password) die "a first configuration needs --tenant, --client-id and --username together" ;;
      *) die "a first configuration with --method $METHOD needs --tenant and --client-id together" ;;
      esac
    fi
    # The app's credential: the certificate when one was given or is there, else the secret.
    credential=(auth.client_secret_file "$SECRET")
    if [ -n "$CERT_SRC" ] || { [ -s "$CERT" ] && [ ! -s "$SECRET" ]; }; then
      credential=(auth.client_certificate_file "$CERT")
    fi
    case $METHOD in
    password)
      auth=(auth.tenant "$TENANT" auth.client_id "$CLIENT_ID" "${credential[@]}"
        auth.username "$USERNAME" auth.password_file "$PASSWORD")
      secrets_note="Secrets are in ${credential[1]} and $PASSWORD (root:pbikiosk 0640)."
      ;;
    service_principal)
      auth=(auth.method service_principal auth.tenant "$TENANT" auth.client_id "$CLIENT_ID" "${credential[@]}")
      secrets_note="The app's secret is in ${credential[1]} (root:pbikiosk 0640)."
      ;;
    device_code)
      auth=(auth.method device_code auth.tenant "$TENANT" auth.client_id "$CLIENT_ID")
      secrets_note="No secret: a person signs in with a code; the grant is kept in /var/lib/pbikiosk."
      ;;
    esac
    # Checked against the file as it is, so that a refused value leaves it untouched.
    "$PBK" --config "$CONF" config set --check "${auth[@]}" || die "$CONF was left as it was"
    new=$(mktemp "$CONF_DIR/.install.XXXXXX")
    TMPS+=("$new")
    {
      echo "# Written by install.sh. $secrets_note"
      echo "# The full example with every option: /usr/share/pbikiosk/pbikiosk.toml.example"
      echo
      echo "[auth]"
      echo
      echo "# One [[playlist]] block per report; \`sudo pbikiosk reports --toml\` prints them."
    } >"$new"
    "$PBK" --config "$new" config set "${auth[@]}" || die "$CONF was left as it was"
    if write_if_changed "$CONF" 0640 root:pbikiosk <"$new"; then changed "sign-in settings in $CONF"; fi
  else
    [ -z "$CERT_SRC" ] || auth+=(auth.client_certificate_file "$CERT")
    conf_set "sign-in settings" "${auth[@]}"
  fi
fi
has_report() { # has_report GUID: some [[playlist]] entry shows it
  local i=1
  while conf_get "playlist[$i].workspace" >/dev/null; do
    [ "$(conf_get "playlist[$i].report")" != "$1" ] || return 0
    i=$((i + 1))
  done
  return 1
}
if [ -n "$WORKSPACE" ]; then
  if ! configured; then
    die "--workspace/--report need the sign-in settings first (--tenant, --client-id, --username)"
  elif ! conf_get 'playlist[1].workspace' >/dev/null; then
    conf_set "first playlist entry" 'playlist[1].workspace' "$WORKSPACE" 'playlist[1].report' "$REPORT" 'playlist[1].seconds' 30
  elif ! has_report "$REPORT"; then
    say "note: $CONF already has a playlist; add report $REPORT by hand (see \`pbikiosk reports --toml\`)"
  fi
fi
# Whatever was there before: only root and group pbikiosk may read config and secrets.
for f in "$CONF" "$SECRET" "$PASSWORD" "$CERT"; do
  [ -f "$f" ] || continue
  if [ "$(stat -c '%U:%G' "$f")" != root:pbikiosk ] || [ $((8#$(stat -c %a "$f") & 8#137)) -ne 0 ]; then
    chown root:pbikiosk "$f"
    chmod u-x,g-wx,o-rwx "$f"
    changed "permissions of $f (root:pbikiosk, no access for others)"
  fi
done

# ---- 6. start (the player notices config changes by itself within 5 s)
if [ "$SYSTEMD_RUNNING" = 1 ]; then
  if [ "$CHANGES" -gt 0 ]; then systemctl daemon-reload; fi
  if [ "$START" = 1 ]; then
    if ! systemctl --quiet is-active pbikiosk.service; then
      systemctl reset-failed pbikiosk.service 2>/dev/null || true
      systemctl start pbikiosk-recover.timer pbikiosk.service
      say "started the kiosk on tty1"
    elif [ "$RESTART" = 1 ]; then
      systemctl restart pbikiosk.service
      say "restarted the kiosk for the new display settings"
    elif [ "$SECRETS_CHANGED" = 1 ]; then
      systemctl try-restart pbikiosk.service
      say "restarted the kiosk for the new secrets"
    fi
  elif [ "$SECRETS_CHANGED" = 1 ]; then
    # Not started by me, but when it runs it must not keep the old secrets.
    systemctl try-restart pbikiosk.service
    say "restarted the kiosk (if it was running) for the new secrets"
  fi
else
  say "note: systemd is not running here (chroot or image build): the kiosk starts at the next boot"
fi

if [ "$CHANGES" -eq 0 ]; then
  say "nothing to change: this machine is already set up"
else
  say "$CHANGES change(s) made"
fi
if ! configured; then
  say "next: write the credentials (run me again, or edit $CONF), then: sudo pbikiosk check"
elif [ "$METHOD" = device_code ]; then
  say "next: sign in: the screen shows a code and a QR code to open on a phone; or run"
  say "      sudo pbikiosk login   here (it prints the code), then: sudo pbikiosk check"
else
  say "next: sudo pbikiosk check   (tests the sign-in and every report)"
fi
