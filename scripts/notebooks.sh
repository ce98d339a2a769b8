#!/usr/bin/env bash
# Executes every notebooks/*.ipynb headlessly with the GoNB Go kernel and
# writes the outputs back into the notebook (they are committed).
#
# Installs what is missing, without PyPI: the Debian packages
# jupyter-nbconvert, python3-ipykernel and jupyter-client (apt-get), the
# GoNB kernel (pinned in notebooks/tools/go.mod), and goimports and gopls
# (pinned, into bin/notebook-tools, which GoNB finds on PATH). Then builds bin/routelab,
# which the notebooks call for simulations and replays.
#
# Environment:
#   NOTEBOOK_TIMEOUT  seconds one cell may run (default 120)
#   NOTEBOOKS         notebooks to execute (default: notebooks/*.ipynb)
# Fails on any cell error.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

GONB_VERSION=$(go -C notebooks/tools list -m -f '{{.Version}}' github.com/janpfeifer/gonb)
TOOLS_VERSION=v0.52.0   # golang.org/x/tools/cmd/goimports
GOPLS_VERSION=v0.23.0   # golang.org/x/tools/gopls
TIMEOUT=${NOTEBOOK_TIMEOUT:-120}

start=$(date +%s)
phase() { echo "notebooks: $* ($(( $(date +%s) - start )) s)" >&2; }

# 1. Debian packages.
missing=()
for p in jupyter-nbconvert python3-ipykernel jupyter-client; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	phase "installing Debian packages: ${missing[*]}"
	if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. goimports and gopls (GoNB runs both), pinned, in a local bin dir.
TOOLBIN="$ROOT/bin/notebook-tools"
mkdir -p "$TOOLBIN"
export PATH="$TOOLBIN:$PATH"
stamp="$TOOLBIN/.versions"
want="gonb=$GONB_VERSION goimports=$TOOLS_VERSION gopls=$GOPLS_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$TOOLBIN/goimports" ] || [ ! -x "$TOOLBIN/gopls" ] || [ ! -x "$TOOLBIN/gonb" ]; then
	phase "installing goimports $TOOLS_VERSION, gopls $GOPLS_VERSION, gonb $GONB_VERSION into $TOOLBIN"
	# Outside the module so the project's go.mod stays untouched.
	(cd "$TOOLBIN" && GOBIN="$TOOLBIN" go install "golang.org/x/tools/cmd/goimports@$TOOLS_VERSION")
	(cd "$TOOLBIN" && GOBIN="$TOOLBIN" go install "golang.org/x/tools/gopls@$GOPLS_VERSION")
	# GoNB is a `tool` of notebooks/tools/go.mod (go install gonb@version is
	# refused by the module proxy here).
	go -C notebooks/tools build -o "$TOOLBIN/gonb" github.com/janpfeifer/gonb
	echo "$want" >"$stamp"
fi

# 3. The GoNB kernel spec (points at $TOOLBIN/gonb).
kernel_json="$(jupyter --data-dir)/kernels/gonb/kernel.json"
if ! grep -qF "\"$TOOLBIN/gonb\"" "$kernel_json" 2>/dev/null; then
	phase "registering the GoNB kernel"
	"$TOOLBIN/gonb" --install >"$TOOLBIN/install.log" 2>&1 || { cat "$TOOLBIN/install.log" >&2; exit 1; }
fi

# 4. The routelab binary the notebooks call.
phase "building bin/routelab"
make -s build

# 5. Execute. Cell outputs replace the committed ones; a cell error fails.
if [ -n "${NOTEBOOKS:-}" ]; then
	read -r -a nbs <<<"$NOTEBOOKS"
else
	shopt -s nullglob; nbs=(notebooks/*.ipynb); shopt -u nullglob
fi
export ROUTELAB="$ROOT/bin/routelab"
export ROUTELAB_ROOT="$ROOT"
for nb in "${nbs[@]}"; do
	t0=$(date +%s)
	phase "executing $nb"
	# The kernel logs verbosely to stderr: shown only when the notebook fails.
	log="bin/notebook-tools/$(basename "$nb" .ipynb).log"
	if ! jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=gonb \
		--ExecutePreprocessor.timeout="$TIMEOUT" \
		--ExecutePreprocessor.record_timing=False \
		"$nb" >"$log" 2>&1; then
		grep -v '^[IW][0-9]\{4\} ' "$log" >&2 || true
		echo "notebooks: $nb failed (kernel log: $log)" >&2
		exit 1
	fi
	python3 scripts/notebooks_clean.py "$nb"
	echo "notebooks: $nb took $(( $(date +%s) - t0 )) s" >&2
done
phase "done"
