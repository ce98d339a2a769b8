#!/bin/sh
# Checks deploy/prometheus/alerts.yml with promtool, installing Debian's
# prometheus package (which ships promtool) when promtool is missing.
set -eu
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null 2>&1; then
	echo "promtool not found: installing the Debian prometheus package" >&2
	if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules deploy/prometheus/alerts.yml
if [ -f deploy/prometheus/alerts_test.yml ]; then
	promtool test rules deploy/prometheus/alerts_test.yml
fi
