#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/k8s with kubeconform (a
# pinned Go tool, installed into bin/ when missing) against the strict,
# standalone schemas vendored in deploy/k8s/schemas — no network: the
# schemas come from the Kubernetes definitions the pinned kubeconform
# module itself ships (fixtures/cache), turned into one file per kind by
# scripts/k8s-schemas.py. The check also fails when the vendored schemas
# differ from what the pinned module gives, and proves that the schemas
# reject a misspelt field.
#
#   scripts/k8s-validate.sh           validate (make k8s-validate)
#   scripts/k8s-validate.sh --write   regenerate deploy/k8s/schemas (make k8s-schemas)
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECONFORM_MODULE=github.com/yannh/kubeconform
KUBECONFORM_VERSION=v0.8.0
SCHEMAS=deploy/k8s/schemas
LOCATION="$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json"
KC=bin/kubeconform

if ! { [ -x "$KC" ] && go version -m "$KC" 2>/dev/null | grep -q "mod[[:space:]]*$KUBECONFORM_MODULE[[:space:]]*$KUBECONFORM_VERSION"; }; then
	echo "installing kubeconform $KUBECONFORM_VERSION into bin/" >&2
	GOBIN="$PWD/bin" go install "$KUBECONFORM_MODULE/cmd/kubeconform@$KUBECONFORM_VERSION"
fi

# The module's source (a read-only copy in the module cache).
moddir=$(cd / && GOFLAGS=-mod=mod go mod download -json "$KUBECONFORM_MODULE@$KUBECONFORM_VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
defs=""
for f in "$moddir"/fixtures/cache/*; do
	if head -c 64 "$f" | grep -q '"definitions"'; then defs=$f; fi
done
if [ -z "$defs" ]; then
	echo "k8s-validate: no Kubernetes definitions in $moddir/fixtures/cache" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 scripts/k8s-schemas.py "$defs" "$tmp/schemas"
if [ "${1:-}" = "--write" ]; then
	rm -rf "$SCHEMAS"
	cp -r "$tmp/schemas" "$SCHEMAS"
	echo "wrote $SCHEMAS from kubeconform $KUBECONFORM_VERSION's definitions"
	exit 0
fi
if ! diff -r "$SCHEMAS" "$tmp/schemas" >/dev/null; then
	echo "k8s-validate: $SCHEMAS differ from kubeconform $KUBECONFORM_VERSION's definitions (run make k8s-schemas)" >&2
	exit 1
fi

# The schemas must reject what they should: a misspelt field (strict).
if printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n' |
	"$KC" -strict -schema-location "$LOCATION" - >/dev/null 2>&1; then
	echo "k8s-validate: the schemas accepted a misspelt field (spec.replica)" >&2
	exit 1
fi

"$KC" -strict -summary -schema-location "$LOCATION" deploy/k8s/*.yaml
