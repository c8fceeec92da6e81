#!/usr/bin/env bash
# Install a pinned Claude Code CLI (npm package @anthropic-ai/claude-code) into
# .tools/claude-code/ for the e2e tests (tests/e2e/test_claude_code.py).
#
# Needs only node, npm and the npm registry. Idempotent: when the pinned version is
# already installed and runs, it only prints the binary's path.
#
# The wrapper package's bin/claude.exe is a 500-byte shell stub until its postinstall
# copies the native binary over it, and npm may skip that script (allowScripts,
# --ignore-scripts). We install with --ignore-scripts so every npm behaves the same,
# and use the native binary of the platform optional dependency directly
# (node_modules/@anthropic-ai/claude-code-<platform>/claude). A stable symlink to it is
# written at .tools/claude-code/bin/claude.
#
# Usage: scripts/install-claude-code.sh        (prints the binary path on the last line)
# Env:   CLAUDE_CODE_VERSION overrides the pin (for trying another release).
set -euo pipefail

PINNED_VERSION="2.1.330"
VERSION="${CLAUDE_CODE_VERSION:-$PINNED_VERSION}"
PACKAGE="@anthropic-ai/claude-code"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.tools/claude-code"
MODULES="$PREFIX/node_modules/@anthropic-ai"
LINK="$PREFIX/bin/claude"

die() {
    echo "install-claude-code: $*" >&2
    exit 1
}

# Platform suffix the wrapper package uses: linux-x64, linux-arm64-musl, darwin-arm64 ...
platform_key() {
    node -e '
        const os = require("os");
        let key = process.platform + "-" + os.arch();
        if (process.platform === "linux") {
            const report = process.report && process.report.getReport();
            if (report && report.header && report.header.glibcVersionRuntime === undefined) {
                key += "-musl";
            }
        }
        process.stdout.write(key);
    '
}

installed_version() {
    local manifest="$MODULES/claude-code/package.json"
    [[ -f "$manifest" ]] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$manifest"
}

# Print the runnable native binary, or nothing.
find_binary() {
    local key candidate
    key="$(platform_key)"
    for candidate in \
        "$MODULES/claude-code-$key/claude" \
        "$MODULES/claude-code-$key/claude.exe" \
        "$MODULES/claude-code/bin/claude.exe"; do
        # The stub is a few hundred bytes; the native binary is hundreds of MB.
        if [[ -x "$candidate" && "$(wc -c <"$candidate")" -gt 1000000 ]]; then
            echo "$candidate"
            return 0
        fi
    done
}

runs_pinned() {
    local binary="$1" out
    out="$(HOME="$(mktemp -d)" DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
        "$binary" --version 2>/dev/null || true)"
    [[ "$out" == "$VERSION"* ]]
}

command -v node >/dev/null || die "node is not on PATH"
command -v npm >/dev/null || die "npm is not on PATH"

binary="$(find_binary || true)"
if [[ "$(installed_version)" == "$VERSION" && -n "$binary" ]] && runs_pinned "$binary"; then
    echo "install-claude-code: $PACKAGE@$VERSION already installed" >&2
else
    echo "install-claude-code: installing $PACKAGE@$VERSION into $PREFIX" >&2
    mkdir -p "$PREFIX"
    started=$(date +%s)
    # --include=optional: the native binary lives in a platform optional dependency.
    # --engine-strict=false: the package asks for node >= 22 but only its JS stub needs node.
    npm install --prefix "$PREFIX" --no-audit --no-fund --no-update-notifier \
        --ignore-scripts --include=optional --engine-strict=false --save-exact \
        --loglevel=error "$PACKAGE@$VERSION" >&2
    echo "install-claude-code: npm install took $(($(date +%s) - started)) s," \
        "$(du -sh "$PREFIX" | cut -f1) on disk" >&2
    binary="$(find_binary || true)"
    [[ -n "$binary" ]] || die "no native binary for platform $(platform_key) under $MODULES"
    runs_pinned "$binary" || die "$binary does not report version $VERSION"
fi

mkdir -p "$(dirname "$LINK")"
ln -sfn "..${binary#"$PREFIX"}" "$LINK"
echo "$binary"
