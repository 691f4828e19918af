#!/usr/bin/env bash
# Schema-driven fuzzing of the live HTTP API with schemathesis (pinned in
# scripts/schemathesis.requirements.txt).
#   scripts/api-fuzz.sh [BIN]
# BIN defaults to ${CARGO_TARGET_DIR:-$HOME/.cache/sightline-target}/debug/sightline; it is
# copied first, so a rebuild during the run changes nothing. The script starts it with
# `serve --in-memory` on a free 127.0.0.1 port (rate limits off), signs in as the superuser
# of tenant `default`, and runs schemathesis over every operation of /openapi.json with that
# token: examples, coverage and fuzzing phases (no stateful phase), checks
# not_a_server_error, status_code_conformance, content_type_conformance and
# response_schema_conformance. It ends with `fuzz: operations=N requests=M failures=F` and
# exits non-zero on any failure. Every request goes to 127.0.0.1 only. Before the run it
# creates one or two of each resource through the API, whose ids the operations on one
# resource then draw half of the time; a hook keeps the fuzzer from deleting or patching
# the superuser it runs as.
# Environment:
#   FUZZ_MAX_EXAMPLES  test cases per operation in each generating phase (default 200)
#   FUZZ_SEED          schemathesis seed, to replay a run (default random; printed)
#   FUZZ_WORKERS       concurrent schemathesis workers (default 2)
#   FUZZ_TIMEOUT       hard limit in seconds for the schemathesis run (default 900)
#   FUZZ_OUT_DIR       where the server log and the reports go (default a new /tmp dir)
#   FUZZ_STATEFUL=1    also run schemathesis's stateful phase (links inferred from responses)
#   FUZZ_ARGS          more `schemathesis run` options, split on spaces, e.g.
#                      FUZZ_ARGS='--include-path-regex ^/api/v1/metrics' to fuzz a few operations
# The virtualenv lives in ${XDG_CACHE_HOME:-$HOME/.cache}/sightline-fuzz-venv and is
# (re)installed when missing or when the requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

case "${1:-}" in -h|--help) sed -n '2,26p' "$0"; exit 0 ;; esac
bin_src="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/sightline-target}/debug/sightline}"
[[ -x "$bin_src" ]] || { echo "fuzz: no executable at $bin_src (build it, or pass BIN)" >&2; exit 2; }

max_examples="${FUZZ_MAX_EXAMPLES:-200}"
workers="${FUZZ_WORKERS:-2}"
fuzz_timeout="${FUZZ_TIMEOUT:-900}"
phases="examples,coverage,fuzzing"
[[ "${FUZZ_STATEFUL:-0}" == 1 ]] && phases="$phases,stateful"

# --- schemathesis in its own virtualenv --------------------------------------------------
req="$root/scripts/schemathesis.requirements.txt"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/sightline-fuzz-venv"
if ! [[ -x "$venv/bin/schemathesis" ]] || ! cmp -s "$req" "$venv/.sightline-requirements.txt"; then
  echo "fuzz: installing $(tr '\n' ' ' <"$req")into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.sightline-requirements.txt"
fi
py="$venv/bin/python"

# --- work dir, binary copy, server --------------------------------------------------------
out="${FUZZ_OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sightline-fuzz.XXXXXX")}"
mkdir -p "$out"
log="$out/server.log"
bin="$out/sightline"
cp "$bin_src" "$bin"

LD_LIBRARY_PATH="$(scripts/duckdb-lib.sh)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
echo "fuzz: server log: $log"

server_pid=""
st_pid=""
failed=1
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n "$st_pid" ]]; then kill -TERM "$st_pid" 2>/dev/null || true; wait "$st_pid" 2>/dev/null || true; fi
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$bin"
  if [[ $failed != 0 || $rc != 0 ]]; then
    echo "fuzz: last 50 lines of the server log ($log):" >&2
    tail -n 50 "$log" >&2 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(
  cd "$out"
  exec env \
    SIGHTLINE_ADMIN_USERNAME=admin SIGHTLINE_ADMIN_PASSWORD=adminpass123 \
    SIGHTLINE_ACCESS_TOKEN_TTL_SECS=86400 \
    SIGHTLINE_LIMIT_EVENTS=off SIGHTLINE_LIMIT_BATCH=off SIGHTLINE_LIMIT_QUERIES=off \
    SIGHTLINE_LIMIT_REPORTS=off SIGHTLINE_LIMIT_DASHBOARDS=off SIGHTLINE_LIMIT_EXPORT=off \
    SIGHTLINE_LIMIT_API=off SIGHTLINE_LIMIT_UNAUTHENTICATED=off \
    SIGHTLINE_LOG_FORMAT=json \
    SIGHTLINE_OUTBOUND_ALLOW='["127.0.0.0/8"]' \
    "$bin" serve --in-memory --listen "127.0.0.1:$port"
) >"$log" 2>&1 &
server_pid=$!

for i in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "fuzz: the server exited before it was ready" >&2; exit 1; fi
  if curl -fsS -o /dev/null "$base/ready" 2>/dev/null; then break; fi
  [[ $i == 120 ]] && { echo "fuzz: $base/ready did not answer 200 within 60 s" >&2; exit 1; }
  sleep 0.5
done

json_field() { "$py" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
token=$(curl -fsS -X POST "$base/api/token/" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"adminpass123"}' | json_field access)
me=$(curl -fsS "$base/api/v1/auth/me" -H "Authorization: Bearer $token")
user_id=$(json_field subject <<<"$me")

# A little data of every kind, through the API, twice: the operations on one resource
# (`/segments/{id}` and the like) draw their path parameter from the first copy's real ids
# half of the time (schemathesis dictionaries, in a config file written below) and fuzz it
# the other half; DELETE draws from the second copy, so that it does not take away what the
# others test. Without them those operations would only ever see 404s. A seed the API
# refuses is only a warning: the run goes on with less data.
mkdir -p "$out/seed"
seed() {
  local name="$1" path="$2" body="$3" code
  code=$(curl -s -o "$out/seed/$name.json" -w '%{http_code}' -X POST "$base$path" \
    -H "Authorization: Bearer $token" -H 'content-type: application/json' -d "$body")
  if [[ $code != 2* ]]; then
    echo "fuzz: seeding POST $path answered $code: $(head -c 300 "$out/seed/$name.json")" >&2
    rm -f "$out/seed/$name.json"
  fi
}
for n in 1 2; do
  seed "tenant$n" /api/v1/tenants '{"id":"fuzz-seed-'$n'","name":"Fuzz seed"}'
  seed "user$n" /api/v1/users '{"username":"fuzz-viewer-'$n'","password":"fuzz-viewer-pass-1","role":"viewer"}'
  seed "api_key$n" /api/v1/api-keys '{"name":"fuzz-seed-'$n'","role":"ingest"}'
  seed "events$n" /api/v1/analytics/events/batch '{"events":[
    {"event_name":"page_view","user_id":"fuzz-user-'$n'","session_id":"fuzz-session-'$n'","properties":{"page":"/home"}},
    {"event_name":"purchase","user_id":"fuzz-user-'$n'","session_id":"fuzz-session-'$n'","properties":{"amount":12.5}}]}'
  seed "metric$n" /api/v1/metrics '{"service_name":"auth","metric_type":"revenue","metric_name":"fuzz_seed","value":'$n'}'
  seed "segment$n" /api/v1/analytics/segments '{"name":"fuzz-seed-'$n'","conditions":[{"field":"total_events","operator":"gt","value":0}]}'
  seed "alert$n" /api/v1/analytics/alerts '{"name":"fuzz-seed-'$n'","metric":"events","condition":"gt","threshold":1}'
  seed "custom_metric$n" /api/v1/analytics/custom-metrics '{"name":"fuzz_seed_'$n'","definition":{"aggregation":"count"}}'
done

config="$out/schemathesis.toml"
curl -fsS -o "$out/openapi.json" "$base/openapi.json"
"$py" - "$out/seed" "$out/openapi.json" >"$config" <<'EOF'
import json, pathlib, re, sys

seeds = pathlib.Path(sys.argv[1])
paths = json.loads(pathlib.Path(sys.argv[2]).read_text())["paths"]


def answer(name):
    try:
        return json.loads((seeds / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}


def ids(name, key="id"):
    return [answer(f"{name}{n}").get(key) for n in (1, 2)]


# (path regex, path parameter, values of the first copy, values of the second copy)
bindings = [
    (r"/api/v1/tenants/\{id\}$", "id", *ids("tenant")),
    (r"/api/v1/users/\{id\}$", "id", *ids("user")),
    (r"/api/v1/api-keys/\{id\}$", "id", *ids("api_key")),
    (r"/api/v1/metrics/\{id\}$", "id", *ids("metric")),
    (r"/api/v1/analytics/segments/\{id\}", "id", *ids("segment")),
    (r"/api/v1/analytics/alerts/\{id\}$", "id", *ids("alert")),
    (r"/api/v1/analytics/custom-metrics/\{name\}$", "name", *ids("custom_metric", "metric_name")),
    (r"/api/v1/analytics/events/\{id\}$", "id", answer("events1").get("event_ids"), None),
    (r"/api/v1/analytics/users/\{user_id\}/analytics$", "user_id", "fuzz-user-1" if answer("events1") else None, None),
    (r"/api/v1/metrics/by-service/\{service_name\}$", "service_name", ["auth", "social_media"], None),
    (r"/api/v1/metrics/by-type/\{metric_type\}$", "metric_type", ["revenue", "donation"], None),
]
dictionaries, operations = [], []


def bind(path_regex, param, values, methods):
    values = [v for v in (values if isinstance(values, list) else [values]) if isinstance(v, str) and v]
    # Only the methods the document has for such a path (an entry that matches nothing warns).
    present = {m.upper() for p, item in paths.items() if re.search("^" + path_regex, p) for m in item}
    methods = "|".join(m for m in methods.split("|") if m in present)
    if not values or not methods:
        return
    name = f"d{len(dictionaries)}"
    dictionaries.append(f"{name} = {{ values = {json.dumps(values)} }}")
    # One name regex ("METHOD /path"): separate include-* keys of one entry match as OR.
    operations.append(
        f"[[operations]]\ninclude-name-regex = {json.dumps(f'^({methods}) {path_regex}')}\n"
        f'parameters = {{ "path.{param}" = {{ dictionary = "{name}", probability = 0.5 }} }}\n'
    )


for path_regex, param, first, second in bindings:
    if second is None:
        bind(path_regex, param, first, "GET|PUT|PATCH|DELETE")
    else:
        bind(path_regex, param, first, "GET|PUT|PATCH")
        bind(path_regex, param, second, "DELETE")
# A 503 or 504 is the API saying "busy" or "too slow", not a fault; status_code_conformance
# still fails one that an operation does not document.
print("[checks.not_a_server_error]")
print('expected-statuses = ["2xx", "3xx", "4xx", "503", "504"]')
print()
print("[dictionaries]")
print("\n".join(dictionaries))
print()
print("\n".join(operations))
EOF

# The fuzzer also learns ids from the responses it gets, the superuser's own id included
# (auth/me, the user list). Deleting that user, or patching its role or password, would
# leave the rest of the run without a working principal, so this hook points such requests
# at an id that does not exist. (The server itself refuses to delete the tenant a superuser
# acts in.)
hooks="$out/fuzz_hooks.py"
cat >"$hooks" <<'EOF'
import os

import schemathesis

PROTECTED_USER = os.environ["FUZZ_PROTECT_USER"].lower()
MISSING_ID = "00000000-0000-0000-0000-00000000f022"


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.path != "/api/v1/users/{id}" or case.method.upper() not in ("DELETE", "PATCH", "PUT"):
        return
    value = (case.path_parameters or {}).get("id")
    if isinstance(value, str) and value.strip().lower() == PROTECTED_USER:
        case.path_parameters["id"] = MISSING_ID
EOF

# --- schemathesis ----------------------------------------------------------------------------
# shellcheck disable=SC2054  # the commas are in option values
args=(
  --config-file "$config"
  run "$base/openapi.json" --url "$base"
  -H "Authorization: Bearer $token"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
  --phases "$phases"
  --max-examples "$max_examples"
  --workers "$workers"
  --continue-on-failure
  --request-timeout 30
  --generation-database none
  # The token and the admin password only open this throwaway in-memory server (its JWT
  # secret is random per start): printing them makes every curl line reproducible as is.
  --output-sanitize false
  --output-truncate false
  --report junit,json
  --report-junit-path "$out/junit.xml"
  --report-json-path "$out/report.json"
)
[[ -n "${FUZZ_SEED:-}" ]] && args+=(--seed "$FUZZ_SEED")
read -r -a extra_args <<<"${FUZZ_ARGS:-}"
args+=("${extra_args[@]}")
color=(--no-color)
[[ -t 1 ]] && color=()

started=$(date +%s)
(cd "$out" && FUZZ_PROTECT_USER="$user_id" SCHEMATHESIS_HOOKS="$hooks" \
  exec timeout --kill-after=15 "$fuzz_timeout" "$venv/bin/schemathesis" "${color[@]}" "${args[@]}") \
  >"$out/schemathesis.txt" 2>&1 &
st_pid=$!
# Shows the output as it comes, and ends (having shown all of it) when schemathesis does.
tail -n +1 -s 0.2 -f --pid="$st_pid" "$out/schemathesis.txt" &
tail_pid=$!
st_rc=0
wait "$st_pid" || st_rc=$?
st_pid=""
wait "$tail_pid" || true
elapsed=$(( $(date +%s) - started ))

problems=0
if [[ $st_rc == 124 || $st_rc == 137 ]]; then
  echo "fuzz: schemathesis did not finish within FUZZ_TIMEOUT=${fuzz_timeout}s" >&2; problems=1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "fuzz: the server died during the run" >&2; problems=1
elif ! curl -fsS "$base/api/v1/users/$user_id" -H "Authorization: Bearer $token" 2>/dev/null | "$py" -c '
import json, sys
try:
    user = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
sys.exit(0 if user.get("role") == "admin" and user.get("superuser") else 1)'; then
  # The hook above is meant to prevent this. Access tokens outlive their user, so the run
  # itself would not notice; a sign-in would not tell either, as the fuzzer's wrong
  # passwords for `admin` may have locked it for a while (429).
  echo "fuzz: the superuser is gone or no longer an admin: the run deleted or changed it" >&2; problems=1
fi

summary=$("$py" - "$out/report.json" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("operations=? requests=? failures=? (no JSON report)")
    sys.exit(0)
ops = (r.get("operations") or {}).get("tested", "?")
reqs = r["test_cases"]["generated"]
fails = sum(g["count"] for g in r["failures"]) + sum(e["count"] for e in r["errors"])
print(f"operations={ops} requests={reqs} failures={fails}")
EOF
)
echo "fuzz: reports: $out/junit.xml $out/report.json $out/schemathesis.txt"
echo "fuzz: schemathesis exit code $st_rc, ${elapsed}s"
echo "fuzz: $summary"
if [[ $st_rc == 0 && $problems == 0 && $summary == *" failures=0" ]]; then
  failed=0
fi
exit "$failed"
