#!/usr/bin/env bash
# make demo: a real nightly run of examples/stack on this machine.
# Uses the Docker Engine at $DOCKER_HOST if one answers there; otherwise
# starts a private dockerd under .demo/ (no networks, loopback only). Starts
# a registry on 127.0.0.1:5310 if none answers there. `make demo-stop` stops
# what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
state="$top/.demo"
registry_addr=127.0.0.1:5310

stop() {
  for pidfile in "$state/dockerd.pid" "$state/registry.pid"; do
    if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
      echo "stopped $(basename "$pidfile" .pid) (pid $(cat "$pidfile"))"
    fi
    rm -f "$pidfile"
  done
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing from Debian: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$state"

engine_up() { curl -fsS --max-time 2 --unix-socket "${1#unix://}" http://engine/_ping >/dev/null 2>&1; }
if [ -n "${DOCKER_HOST:-}" ] && [[ "$DOCKER_HOST" == unix://* ]] && engine_up "$DOCKER_HOST"; then
  echo "using the Docker Engine at $DOCKER_HOST"
elif engine_up "unix://$state/docker.sock"; then
  export DOCKER_HOST="unix://$state/docker.sock"
  echo "using the demo's Docker Engine at $DOCKER_HOST"
else
  export DOCKER_HOST="unix://$state/docker.sock"
  echo "starting a private Docker Engine at $DOCKER_HOST (log: .demo/dockerd.log)"
  mkdir -p "$state/data" "$state/exec"
  setsid dockerd --data-root "$state/data" --exec-root "$state/exec" --pidfile "$state/dockerd.pid" \
    --host "$DOCKER_HOST" --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
    >"$state/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 100); do engine_up "$DOCKER_HOST" && break; sleep 0.2; done
  engine_up "$DOCKER_HOST" || { echo "dockerd did not start:"; tail -5 "$state/dockerd.log"; exit 3; }
fi

if curl -fsS --max-time 2 "http://$registry_addr/v2/" >/dev/null 2>&1; then
  echo "using the registry at $registry_addr"
else
  echo "starting a registry at $registry_addr (storage: .demo/registry)"
  cat >"$state/registry.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $state/registry}
  delete: {enabled: true}
http: {addr: $registry_addr}
YML
  setsid docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 </dev/null &
  echo $! >"$state/registry.pid"
  for _ in $(seq 50); do curl -fsS --max-time 1 "http://$registry_addr/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
fi

# The example images are FROM scratch plus Debian's static busybox.
cp /bin/busybox examples/stack/docker/busybox

echo
echo "\$ bin/nightshift run -c examples/stack/nightshift.toml"
set +e
bin/nightshift run -c examples/stack/nightshift.toml --junit .demo/junit.xml --json .demo/run.json
rc=$?
set -e
echo
echo "exit code $rc. The staging registry now holds:"
for repo in $(curl -fsS "http://$registry_addr/v2/_catalog" | sed 's/.*\[//; s/\].*//; s/"//g; s/,/ /g'); do
  echo "  $registry_addr/$repo: $(curl -fsS "http://$registry_addr/v2/$repo/tags/list" | sed 's/.*"tags":\[//; s/\].*//; s/"//g')"
done
echo
echo "Records: bin/nightshift history -c examples/stack/nightshift.toml"
echo "         bin/nightshift show -c examples/stack/nightshift.toml <run>"
echo "Reports: .demo/junit.xml .demo/run.json; logs under examples/stack/logs/"
echo "Stop the demo's engine and registry: make demo-stop"
exit $rc
