#!/usr/bin/env bash
# Install SEDAC as a systemd service on a Raspberry Pi / Jetson (Debian-based, systemd ≥ 246).
#
#   sudo deploy/install.sh [--prefix DIR] [--no-start]
#
# Needs Node.js ≥ 20 and npm on the PATH. Copies this checkout to PREFIX (default /opt/sedac),
# builds it, creates the `sedac` system user, installs /etc/sedac/sedac.yaml (only if absent) and
# systemd/sedac.service, then enables and starts the service. Re-running upgrades in place and
# keeps the config.
set -euo pipefail

PREFIX=/opt/sedac
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

SRC="$(cd "$(dirname "$0")/.." && pwd)"
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
command -v node >/dev/null || { echo "install.sh: node not found; install Node.js 20 or newer first" >&2; exit 1; }
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || { echo "install.sh: Node.js $NODE_MAJOR found; SEDAC needs 20 or newer" >&2; exit 1; }
command -v systemd-notify >/dev/null || { echo "install.sh: systemd-notify not found (the unit is Type=notify)" >&2; exit 1; }

echo "== user sedac"
if ! id sedac >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/sedac --no-create-home --shell /usr/sbin/nologin sedac
fi
if getent group video >/dev/null; then usermod -aG video sedac; fi

echo "== files → $PREFIX"
install -d -m 0755 "$PREFIX"
# copy the sources (not build output, dependencies or VCS data), then build there
tar -C "$SRC" --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude=./bench/results -cf - . | tar -C "$PREFIX" -xf -
cd "$PREFIX"
npm ci --no-audit --no-fund
npm run build --silent
npm prune --omit=dev --no-audit --no-fund
chmod 0755 "$PREFIX/dist/agent/cli.js"
ln -sf "$PREFIX/dist/agent/cli.js" /usr/local/bin/sedac

echo "== config /etc/sedac/sedac.yaml"
install -d -m 0750 -o root -g sedac /etc/sedac
if [ ! -f /etc/sedac/sedac.yaml ]; then
  install -m 0640 -o root -g sedac "$PREFIX/config/sedac.example.yaml" /etc/sedac/sedac.yaml
  echo "   installed the example: set models.*.source to a model or bundle on this device"
  echo "   (relative paths resolve against /var/lib/sedac) and mqtt.url to your broker."
else
  echo "   kept the existing config"
fi

echo "== systemd unit"
sed "s#/opt/sedac/#$PREFIX/#g" "$PREFIX/systemd/sedac.service" > /etc/systemd/system/sedac.service
chmod 0644 /etc/systemd/system/sedac.service
systemctl daemon-reload
if [ "$START" -eq 1 ]; then
  systemctl enable sedac.service
  systemctl restart sedac.service
  systemctl --no-pager --lines=5 status sedac.service || true
else
  echo "   not started (--no-start): systemctl enable --now sedac"
fi
echo "== done: journalctl -u sedac -f; sedac request prompt --text 'a dog' --config /etc/sedac/sedac.yaml"
