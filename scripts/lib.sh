# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/demo and friends. Source it; do not run it.
#   . "$(dirname "$0")/lib.sh"
# Sets T2S_ROOT (the repository root) and offers: t2s_log, t2s_die, t2s_need_root,
# t2s_install_deps, t2s_build DIR [CMAKE ARGS...], and the step recorder used by scripts/test
# (t2s_step NAME CMD..., t2s_step_skip NAME REASON, t2s_summary).

T2S_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export T2S_ROOT

t2s_log() { printf '\n==> %s\n' "$*"; }
t2s_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Exits unless running as root (installing packages, TUN devices and namespaces need it).
t2s_need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    t2s_die "$1 must run as root: sudo $0 (or set T2S_SKIP_INSTALL=1 to skip the package step)"
  fi
}

# Installs the Debian packages unless T2S_SKIP_INSTALL=1.
t2s_install_deps() {
  if [ "${T2S_SKIP_INSTALL:-0}" = 1 ]; then
    echo "T2S_SKIP_INSTALL=1: not installing packages"
    return 0
  fi
  t2s_need_root "installing packages"
  "$T2S_ROOT/scripts/install-deps"
}

# Configures and builds one build tree: t2s_build DIR [extra cmake arguments] (DIR relative
# to the current directory, or absolute).
t2s_build() {
  local dir=$1
  shift
  cmake -S "$T2S_ROOT" -B "$dir" "$@" &&
    cmake --build "$dir" -j "$(nproc)"
}

# Step recorder: every step prints a banner, runs, and is remembered with its result and time.
T2S_STEP_NAMES=()
T2S_STEP_RESULTS=()
T2S_STEP_SECONDS=()
T2S_STEP_NOTES=()

t2s_record() { # NAME RESULT SECONDS NOTE
  T2S_STEP_NAMES+=("$1")
  T2S_STEP_RESULTS+=("$2")
  T2S_STEP_SECONDS+=("$3")
  T2S_STEP_NOTES+=("$4")
}

# Runs CMD... as the step NAME; returns the command's exit status (the caller decides what
# depends on it). The exit status 0 is PASS, anything else FAIL.
t2s_step() {
  local name=$1
  shift
  local start=$SECONDS rc=0
  printf '\n==> [%s] %s\n' "$name" "$*"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    t2s_record "$name" PASS "$took" ""
  else
    t2s_record "$name" FAIL "$took" "exit status $rc"
  fi
  printf '<== [%s] %s in %ds\n' "$name" "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)")" "$took"
  return "$rc"
}

# Records a step that did not run, with the reason.
t2s_step_skip() {
  printf '\n==> [%s] skipped: %s\n' "$1" "$2"
  t2s_record "$1" SKIP 0 "$2"
}

# Records a step that ran but whose result is decided by the caller (e.g. pytest's exit 5).
t2s_step_result() { # NAME RESULT SECONDS NOTE
  t2s_record "$@"
}

# Prints the table of steps and the closing line "N passed, N failed[, N skipped]".
# Returns 0 when no step failed.
t2s_summary() {
  local i passed=0 failed=0 skipped=0
  printf '\n==================== summary ====================\n'
  for i in "${!T2S_STEP_NAMES[@]}"; do
    printf '%-6s %-22s %5ss  %s\n' "${T2S_STEP_RESULTS[$i]}" "${T2S_STEP_NAMES[$i]}" \
      "${T2S_STEP_SECONDS[$i]}" "${T2S_STEP_NOTES[$i]}"
    case ${T2S_STEP_RESULTS[$i]} in
    PASS) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)) ;;
    *) skipped=$((skipped + 1)) ;;
    esac
  done
  printf 'total time: %ds\n' "$SECONDS"
  if [ "$skipped" -gt 0 ]; then
    printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
  else
    printf '%d passed, %d failed\n' "$passed" "$failed"
  fi
  [ "$failed" -eq 0 ]
}
