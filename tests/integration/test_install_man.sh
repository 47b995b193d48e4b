#!/usr/bin/env bash
# `cmake --install` (issue 9, "Packaging"): into a fresh prefix it puts the binary and the
# man pages xmppfront(8) and xmppfront.json(5) where man(1) finds them, and both render
# without a warning (man --warnings, groff -man -ww). The pages stay in step with the
# program: every key of docs/configuration.md's main-file, listeners, federation and
# tenant-file tables is named in xmppfront.json(5); every command of --help in xmppfront(8).
. "$(dirname "$0")/lib.sh"
T=install_man
xf_init "$T" || exit 1
BUILD=$(dirname "$XF_BIN")
PREFIX="$XF_TMP/prefix"
[ -f "$BUILD/cmake_install.cmake" ] || xf_setup_failed "$T: $BUILD is not a CMake build tree"
cmake --install "$BUILD" --prefix "$PREFIX" > "$XF_TMP/install.out" 2>&1 ||
  { cat "$XF_TMP/install.out"; xf_setup_failed "$T: cmake --install"; }
M="$PREFIX/share/man"
xf_check "cmake --install puts share/man/man8/xmppfront.8 and share/man/man5/xmppfront.json.5 and bin/xmppfront" \
  test -s "$M/man8/xmppfront.8" -a -s "$M/man5/xmppfront.json.5" -a -x "$PREFIX/bin/xmppfront"
xf_check "the installed binary runs (--version)" "$PREFIX/bin/xmppfront" --version
xf_check "man finds both pages by name and section in the prefix" \
  bash -c "[ \"\$(man -M '$M' -w 8 xmppfront)\" = '$M/man8/xmppfront.8' ] &&
           [ \"\$(man -M '$M' -w 5 xmppfront.json)\" = '$M/man5/xmppfront.json.5' ]"
for page in "$M/man8/xmppfront.8" "$M/man5/xmppfront.json.5"; do
  xf_check "$(basename "$page"): man --warnings and groff -man -ww print no warning" \
    bash -c "out=\$( { MANWIDTH=80 man --warnings -l '$page' >/dev/null; groff -man -ww -z '$page'; } 2>&1 ); echo \"\$out\"; [ -z \"\$out\" ]"
done
# keys of a docs/configuration.md table: the rows `| \`key\` |` from heading $1 to the next heading
doc_keys() {
  awk -v h="$1" 'index($0, h) == 1 { on = 1; next } on && /^#/ { exit }
                 on && /^\| `[a-z_0-9]+`/ { split($0, f, "`"); print f[2] }' "$XF_ROOT/docs/configuration.md"
}
page_text() { MANWIDTH=200 man -l "$1" 2>/dev/null | col -b; }
missing_keys() {   # PAGE HEADING...
  local page=$1 h k miss=""; shift
  local txt; txt=$(page_text "$page")
  for h in "$@"; do
    for k in $(doc_keys "$h"); do grep -qw -- "$k" <<<"$txt" || miss="$miss $h:$k"; done
  done
  [ -z "$miss" ] || { echo "not in $(basename "$page"):$miss"; return 1; }
  [ -n "$(doc_keys "$1")" ]   # the table was found at all
}
export -f doc_keys page_text missing_keys; export XF_ROOT
xf_check "xmppfront.json(5) names every key of the main file, listeners, limits, federation and tenant tables" \
  missing_keys "$M/man5/xmppfront.json.5" "## Main file" '### `listeners[i]`' '### `limits`' '### `federation`' "## Tenant files"
xf_check "xmppfront(8) names every command and option of --help" \
  bash -c "txt=\$(page_text '$M/man8/xmppfront.8'); miss='';
           for w in \$('$PREFIX/bin/xmppfront' --help | grep -oE -- '(^ *xmppfront [a-z]+|--[a-z-]+|-[a-zA-Z]\\b)' | awk '{print \$NF}' | sort -u); do
             grep -qF -- \"\$w\" <<<\"\$txt\" || miss=\"\$miss \$w\"; done; echo \"missing:\$miss\"; [ -z \"\$miss\" ]"
xf_finish "$T"
