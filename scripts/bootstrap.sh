# Sourced by scripts/dev and scripts/test: make .venv (if missing) and install agentlog into it.
# Usage: . scripts/bootstrap.sh [EXTRAS]   e.g. ". scripts/bootstrap.sh dev"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: agentlog needs Python >= 3.11; $python is $("$python" --version 2>&1). Set PYTHON=python3.11." >&2
  exit 2
fi
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "creating virtual environment $root/.venv" >&2
  "$python" -m venv "$root/.venv"
fi
# shellcheck disable=SC1091
. "$root/.venv/bin/activate"
extras="${1:-}"
spec="$root"
[ -n "$extras" ] && spec="$root[$extras]"
echo "installing agentlog${extras:+[$extras]} into .venv (editable)" >&2
python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check -e "$spec"
