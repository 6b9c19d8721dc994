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

echo "== tofu apply"
if ! "$bin/tofu" apply -auto-approve -no-color >apply.log 2>&1; then
  cat apply.log
  echo "tofu apply failed" >&2
  exit 1
fi
# Drop the dev_overrides warning (its last line ends "releases."); keep
# everything else tofu said.
awk '/Warning: Provider development overrides are in effect/{skip=1} skip&&/releases\.$/{skip=0;next} !skip' apply.log

echo "== calls the emulator served"
kill "$sim_pid" && wait "$sim_pid" 2>/dev/null || true
sim_pid=
sed -n '/^calls:/,$p' "$work/cloudsim.log"
