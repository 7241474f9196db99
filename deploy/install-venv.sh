#!/bin/sh
# Install bliss-exporter with its runtime dependencies into a new virtual environment.
#
#   deploy/install-venv.sh VENV [SOURCE_DIR]      e.g. deploy/install-venv.sh /opt/bliss-exporter .
#
# The container image's builder stage runs this script (tests/test_deployment.py runs it too, so the
# image's install steps are tested without Docker); it also makes a plain host install for systemd.
# PYTHON picks the interpreter (default python3, >= 3.11); PIP_NO_CACHE_DIR=1 keeps no pip cache.
#
# pip resolves every dependency as usual (the `demo` extra, an embedded Redis Stack, is not one),
# except packages the exporter never needs:
#   - hdf5plugin (~190 MB), lxml and pillow: image codecs of fabio (bitshuffle HDF5, XSD, JPEG/TIFF),
#     which fabio imports only if present. blissdata and silx require fabio to read lima images;
#     the exporter reads stream counters, never images.
# To leave those out, blissdata, silx and fabio are installed with --no-deps, followed by all their
# other requirements. The environment takes ~230 MB instead of ~450 MB; pip warns that hdf5plugin,
# lxml and pillow are missing: expected. `simulate` works from it; `demo` needs the `demo` extra.
set -eu

venv=${1:?usage: install-venv.sh VENV [SOURCE_DIR]}
src=${2:-.}
python=${PYTHON:-python3}
no_deps="blissdata silx fabio"                       # installed without their dependencies,
leave_out="hdf5plugin lxml pillow"  # then all those, except these

"$python" -m venv "$venv"
vpython="$venv/bin/python"
pip() { "$vpython" -m pip --disable-pip-version-check --no-input "$@"; }

# reqs --only|--except "NAME..." SOURCE...: the requirements (optional extras left out) of
# pyproject.toml files or of installed packages, keeping only / all but the ones on NAME...
reqs() {
  "$vpython" - "$@" <<'PY'
import re, sys, tomllib
from importlib.metadata import requires

mode, names, sources = sys.argv[1], set(sys.argv[2].split()), sys.argv[3:]
for source in sources:
    if source.endswith(".toml"):
        with open(source, "rb") as fh:
            found = tomllib.load(fh)["project"]["dependencies"]
    else:
        found = [r for r in requires(source) or [] if "extra ==" not in r]
    for req in found:
        name = re.match(r"\s*([A-Za-z0-9._-]+)", req).group(1).lower().replace("_", "-")
        if (name in names) == (mode == "--only"):
            print(req)
PY
}

# 1. blissdata (in our version range), then silx and fabio (in blissdata's), without dependencies
pip install --no-deps "$(reqs --only blissdata "$src/pyproject.toml")"
reqs --only "silx fabio" blissdata > "$venv/requirements-no-deps.txt"
pip install --no-deps -r "$venv/requirements-no-deps.txt"
# 2. all the other requirements, ours and theirs, resolved by pip
# shellcheck disable=SC2086
reqs --except "$no_deps $leave_out" "$src/pyproject.toml" $no_deps > "$venv/requirements.txt"
pip install -r "$venv/requirements.txt"
# 3. the exporter itself
pip install --no-deps "$src"
# what the exporter (and `simulate`) import must all be there
"$vpython" -c "import exporter.app, exporter.cli, exporter.web.status, exporter.web.webconfig, blissdata.beacon.data, \
blissdata.redis_engine.store, blissdata.streams.lima.stream"
"$venv/bin/bliss-exporter" --help > /dev/null
