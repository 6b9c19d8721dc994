#!/usr/bin/env bash
# Runs revoke-expired against the cloud emulator seeded with fixture.json:
# an NSG with an expired and a live grant, and an EC2 grant group whose
# grant has expired. The first run revokes the two expired grants, the
# second finds nothing left to do. Needs only Go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/cloudsim" ./cmd/cloudsim && go build -o "$work/terraform-provider-jit" .)
"$work/cloudsim" -fixture "$here/fixture.json" -env-file "$work/env" >"$work/cloudsim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/env" ] && break; sleep 0.1; done
[ -s "$work/env" ] || { cat "$work/cloudsim.log"; echo "emulator did not start" >&2; exit 1; }
# The emulator's identity endpoint, AWS keys and region, as a job's
# environment would carry real ones.
# shellcheck disable=SC1091
source "$work/env"
url=$(sed -n 's/^cloudsim listening on //p' "$work/cloudsim.log")
export ARM_SUBSCRIPTION_ID=00000000-0000-0000-0000-0000000000d1 AWS_ENDPOINT_URL_EC2="$url"

for run in first second; do
  echo "== $run run"
  status=0
  "$work/terraform-provider-jit" revoke-expired -azure-endpoint "$url" || status=$?
  echo "== exit code $status"
done
