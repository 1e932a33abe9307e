#!/usr/bin/env bash
# Checks that every C++ file of the project is laid out as .clang-format says; CI runs it first.
#   tools/check_format.sh          list what differs (file:line and the expected layout), exit 1 if anything
#   tools/check_format.sh --fix    rewrite the files in place
# Uses clang-format 14 (Debian 12's `clang-format`, installed by tools/install_deps.sh): other versions lay
# out some constructs differently, so they are refused rather than reporting differences nobody made.
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
case "${1:-}" in
  "") ;;
  --fix) fix=1 ;;
  *) echo "check_format: unknown argument '$1'; expected nothing or --fix" >&2; exit 2 ;;
esac
format=$(command -v clang-format-14 || command -v clang-format || true)
if [[ -z $format ]]; then
  echo "check_format: clang-format not found; expected Debian 12's clang-format 14 (tools/install_deps.sh installs it)" >&2
  exit 2
fi
version=$("$format" --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
if [[ $version != 14 ]]; then
  echo "check_format: $format is clang-format $version; expected 14 (Debian 12's), the version .clang-format is applied with" >&2
  exit 2
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.hpp' '*.cpp' '*.cu' '*.cuh' '*.h')
else
  mapfile -t files < <(find include examples tests bench tools \( -name '*.hpp' -o -name '*.cpp' -o -name '*.cu' \
                       -o -name '*.cuh' -o -name '*.h' \) -type f | sort)
fi
if ((fix)); then
  "$format" -i "${files[@]}"
  echo "check_format: ${#files[@]} files formatted"
  exit 0
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
if "$format" --dry-run --Werror "${files[@]}" 2>"$report"; then
  echo "check_format: ${#files[@]} files match .clang-format"
  exit 0
fi
head -n 60 "$report" >&2
differing=$(grep -o '^[^:]*:[0-9]*:[0-9]*: error' "$report" | cut -d: -f1 | sort -u)
echo "check_format: $(wc -l <<<"$differing") of ${#files[@]} files differ from .clang-format:" >&2
sed 's/^/  /' <<<"$differing" >&2
echo "check_format: run tools/check_format.sh --fix (clang-format $version) and commit the result" >&2
exit 1
