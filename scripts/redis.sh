#!/bin/sh
# Starts (up) or stops (down) a throwaway Debian redis-server on loopback for
# tests, installing the redis-server package when it is missing. `up` picks
# a free port, runs the server in the background with no persistence, and
# writes its address to $REDIS_DIR/addr (default .redis-test/addr); `down`
# stops the server it started (by the pid it recorded) and removes the
# directory. Tests read the address from ROUTELAB_REDIS_ADDR:
#
#   sh scripts/redis.sh up && export ROUTELAB_REDIS_ADDR=$(cat .redis-test/addr)
#   go test ./sharedstate ./gateway -run Redis
#   sh scripts/redis.sh down
set -eu
cd "$(dirname "$0")/.."
dir=${REDIS_DIR:-.redis-test}

install() {
	command -v redis-server >/dev/null 2>&1 && return 0
	echo "redis-server not found: installing the Debian redis-server package" >&2
	if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
	# The package starts a system service on 6379 where an init system runs;
	# tests never use it.
}

# freeport prints a loopback port nothing listens on.
freeport() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
		return
	fi
	p=$((20000 + $$ % 20000))
	while redis-cli -p "$p" ping >/dev/null 2>&1; do p=$((p + 1)); done
	echo "$p"
}

up() {
	install
	if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
		echo "redis-server already running at $(cat "$dir/addr")"
		return 0
	fi
	mkdir -p "$dir"
	port=${REDIS_PORT:-$(freeport)}
	redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
		--dir "$PWD/$dir" --pidfile "$PWD/$dir/redis.pid" --logfile "$PWD/$dir/redis.log" --daemonize yes
	i=0
	until redis-cli -p "$port" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then echo "redis-server did not answer on 127.0.0.1:$port" >&2; cat "$dir/redis.log" >&2; exit 1; fi
		sleep 0.1
	done
	cp "$dir/redis.pid" "$dir/pid"
	echo "127.0.0.1:$port" >"$dir/addr"
	echo "redis-server running at 127.0.0.1:$port (pid $(cat "$dir/pid"))"
}

down() {
	if [ -f "$dir/pid" ]; then
		pid=$(cat "$dir/pid")
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
	fi
	rm -rf "$dir"
}

case "${1:-}" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
