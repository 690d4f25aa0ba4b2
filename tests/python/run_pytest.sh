#!/usr/bin/env bash
# run_pytest.sh [--browser] DIR [pytest args...]: one pytest suite (tests/web.cmake's CTests).
# Uses the first Python with pytest: $TOPICFLOW_PYTHON, /usr/bin/python3 (Debian's packages),
# python3. With --browser, exits 77 (CTest: skipped) when Chromium or its driver is absent.
set -euo pipefail

browser=0
if [[ "${1:-}" == --browser ]]; then
  browser=1
  shift
fi
python=""
for candidate in "${TOPICFLOW_PYTHON:-}" /usr/bin/python3 python3; do
  if [[ -n "$candidate" ]] && "$candidate" -c 'import pytest' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "run_pytest: no python3 with pytest (apt-get install python3-pytest)" >&2
  exit 1
fi
if ((browser)); then
  for tool in chromium chromedriver; do
    if ! command -v "$tool" >/dev/null; then
      echo "run_pytest: $tool is not installed: browser tests skipped" >&2
      exit 77
    fi
  done
  "$python" -c 'import selenium' || { echo "run_pytest: python3-selenium is missing" >&2; exit 1; }
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$python" -m pytest -p no:cacheprovider -q -ra "$@"
