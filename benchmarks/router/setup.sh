#!/usr/bin/env bash
# Benchmark-only tools: nginx (the reverse-proxy floor), wrk (the load generator) and
# valgrind (client_ab.py --instructions) from Debian, and the LiteLLM proxy in its own venv (benchmarks/router/.venv, gitignored) so
# it never touches the project's .venv. Idempotent; run as root (apt-get).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v valgrind >/dev/null || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  # the Debian package starts a system nginx on :80; the benchmark runs its own
  (systemctl stop nginx || service nginx stop) 2>/dev/null || true
fi
if [ "${SKIP_LITELLM:-0}" != 1 ] && [ ! -x "$here/.venv/bin/litellm" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q --upgrade pip
  "$here/.venv/bin/pip" install -q "litellm[proxy]==${LITELLM_VERSION:-1.108.7}" granian
fi
# The router's runtime packages (pinned as in the project's .venv) under an interpreter built
# as the router image's is (python:*-slim and Debian's python3: PGO + LTO, libpython linked
# in), for `bench.py --router-python benchmarks/router/.venv-opt/bin/python`. The router
# imports its own code from the checkout (procs.router runs it there), so no install of it.
opt="${OPT_PYTHON:-/usr/bin/python3}"
if [ "${SKIP_OPT:-0}" != 1 ] && [ -x "$opt" ] && [ ! -x "$here/.venv-opt/bin/python" ]; then
  root="$(cd "$here/../.." && pwd)"
  "$opt" -m venv "$here/.venv-opt"
  "$root/.venv/bin/python" -c 'from pipeline.deploy.dockerfile import runtime_closure as c
print("\n".join(f"{k}=={v}" for k, v in sorted(c().items())))' >"$here/.venv-opt/requirements.txt"
  "$here/.venv-opt/bin/pip" install -q -r "$here/.venv-opt/requirements.txt"
fi
echo "nginx: $(/usr/sbin/nginx -v 2>&1)"; echo "wrk: $(wrk -v 2>&1 | head -1)"
[ -x "$here/.venv-opt/bin/python" ] && echo "router-alt: $("$here/.venv-opt/bin/python" -VV)"
[ -x "$here/.venv/bin/litellm" ] && echo "litellm: $("$here/.venv/bin/pip" show litellm | grep ^Version)"
