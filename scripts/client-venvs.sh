#!/usr/bin/env bash
# Build the client virtualenvs the compatibility suite (tests/clients) runs real clients in.
#
#   .venv-clients-new  databricks-sdk 0.156 + openai 3.x + mlflow-skinny   (constraints/clients-new.txt)
#   .venv-clients-lc   databricks-langchain 0.21 (sdk 0.94, openai 2.x)    (constraints/clients-langchain.txt)
#
# Two client generations cannot share one environment (databricks-langchain pins the older SDK and openai<3).
# Idempotent: a venv whose constraints file is unchanged (hash kept in the venv) is skipped.
# Usage: scripts/client-venvs.sh [new|lc ...]   (default: both). PYTHON selects the interpreter (python3.11).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"

build() {
    local name="$1" constraints="$2" top="$3"
    local venv="$ROOT/.venv-clients-$name"
    local stamp="$venv/.constraints.sha256"
    local want
    want="$(cat "$ROOT/$constraints" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
        echo "client-venvs: $venv is up to date"
        return 0
    fi
    echo "client-venvs: building $venv from $constraints"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    # The constraints file pins every package, so pip never has to backtrack.
    local log="$venv/.install.log"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$ROOT/$constraints" >"$log" 2>&1; then
        grep -v "^WARNING: Location" "$log" >&2 || true
        echo "client-venvs: pip install failed for $venv" >&2
        exit 1
    fi
    "$venv/bin/python" -c "import $top" || { echo "client-venvs: $venv is broken (cannot import $top)" >&2; exit 1; }
    echo "$want" > "$stamp"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(new lc)
for t in "${targets[@]}"; do
    case "$t" in
        new) build new constraints/clients-new.txt "databricks.sdk, openai, mlflow.deployments" ;;
        lc) build lc constraints/clients-langchain.txt "databricks_langchain, databricks.sdk, openai" ;;
        *) echo "unknown client venv '$t' (use: new, lc)" >&2; exit 2 ;;
    esac
done
