#!/usr/bin/env bash
# make demo: start the cloud emulator seeded with fixture.json, tofu init +
# apply this directory against it through dev_overrides, show what the
# provider found and what it called, then stop the emulator.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/bin"
work=$(mktemp -d)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/cloudsim" ./cmd/cloudsim)
"$work/cloudsim" -fixture "$here/fixture.json" -env-file "$work/env" >"$work/cloudsim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/env" ] && break; sleep 0.1; done
[ -s "$work/env" ] || { cat "$work/cloudsim.log"; echo "emulator did not start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$work/env"
url=$(sed -n 's/^cloudsim listening on //p' "$work/cloudsim.log")
echo "== emulator at $url"

cat >"$work/tofurc" <<RC
provider_installation {
  dev_overrides { "jitaccess/jit" = "$bin" }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/tofurc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export TF_VAR_azure_endpoint="$url" TF_VAR_aws_endpoint="$url"
cp "$here"/*.tf "$work/"
cd "$work"

# tofu runs a command, shows what it said without the dev_overrides warning
# (whose last line ends "releases."), and stops the demo if it failed.
tofu() {
  if ! "$bin/tofu" "$@" -no-color >tofu.log 2>&1; then
    cat tofu.log
    echo "tofu $1 failed" >&2
    exit 1
  fi
  awk '/Warning: Provider development overrides are in effect/{skip=1} skip&&/releases\.$/{skip=0;next} !skip' tofu.log
}

echo "== 1. tofu apply: the policy locks the ports"
tofu apply -auto-approve

# 2. Alice asks for SSH until a few seconds from now.
until=$(date -u -d "+20 seconds" +%Y-%m-%dT%H:%M:%SZ)
export TF_VAR_ssh_until="$until"
echo "== 2. tofu apply: alice's request, until $until"
tofu apply -auto-approve

echo "== 3. waiting for the end of the grant"
while [ "$(date -u +%s)" -le "$(date -u -d "$until" +%s)" ]; do sleep 1; done
echo "== tofu plan: the refresh marks the port Expired, the plan removes its rules"
tofu plan
echo "== tofu apply"
tofu apply -auto-approve

echo "== calls the emulator served"
kill "$sim_pid" && wait "$sim_pid" 2>/dev/null || true
sim_pid=
sed -n '/^calls:/,$p' "$work/cloudsim.log"
