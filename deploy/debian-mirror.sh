#!/usr/bin/env bash
# Prints the Debian archive URI this machine's apt uses, so that scripts which need
# another suite (install-deps.sh: trixie's mbedTLS on Debian 12; tests/fresh-root.sh:
# debootstrap) go through the same mirror or proxy as the machine itself.
#
#   bash deploy/debian-mirror.sh              archive URI, e.g. http://deb.debian.org/debian
#   bash deploy/debian-mirror.sh --security   security URI, e.g. http://deb.debian.org/debian-security
#
# Contract: reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line
# format, sources.list(5)) and /etc/apt/sources.list.d/*.sources (deb822 format); prints
# the first URI of a "deb" entry whose suites include the machine's release codename
# (VERSION_CODENAME of /etc/os-release) — with --security, "<codename>-security"
# instead. Entries with "Enabled: no" are skipped. If nothing matches, it prints
# deb.debian.org's URI and says so on stderr. Never modifies anything. Exit status 0.
# XF_APT_ETC (default /etc/apt) and XF_CODENAME override the inputs, for tests.
# Can also be sourced: it then defines xf_debian_mirror [--security].
xf_debian_mirror() {
  local want_security=0
  [ "${1:-}" = "--security" ] && want_security=1
  local etc=${XF_APT_ETC:-/etc/apt} codename=${XF_CODENAME:-}
  if [ -z "$codename" ] && [ -r /etc/os-release ]; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  fi
  local suite=$codename
  [ "$want_security" = 1 ] && suite="$codename-security"

  local files=() f uri=""
  [ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
  for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  if [ -n "$codename" ]; then
    for f in "${files[@]}"; do
      case "$f" in
        *.sources)
          # deb822: stanzas separated by blank lines; fields may continue on lines that
          # start with white space; keys are case-insensitive.
          uri=$(awk -v want="$suite" '
            function flush() {
              if (enabled != "no" && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "") {
                split(uris, u, " "); print u[1]; found = 1; exit
              }
              types = ""; uris = ""; suites = ""; enabled = ""; key = ""
            }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { val = $0; gsub(/^[ \t]+|[ \t]+$/, "", val)
                       if (key == "types") types = types " " val
                       else if (key == "uris") uris = uris " " val
                       else if (key == "suites") suites = suites " " val
                       next }
            { i = index($0, ":"); if (i == 0) next
              key = tolower(substr($0, 1, i - 1)); val = substr($0, i + 1)
              gsub(/^[ \t]+|[ \t]+$/, "", val); gsub(/[ \t]+/, " ", val)
              if (key == "types") types = val
              else if (key == "uris") uris = val
              else if (key == "suites") suites = val
              else if (key == "enabled") enabled = tolower(val) }
            END { if (!found) flush() }' "$f")
          ;;
        *)
          # One-line: deb [ options ] uri suite component...
          uri=$(awk -v want="$suite" '
            { sub(/#.*/, "") }
            $1 != "deb" { next }
            { n = 2
              if ($2 ~ /^\[/) { while (n <= NF && $n !~ /\]$/) n++; n++ }
              if ($(n + 1) == want) { print $n; exit } }' "$f")
          ;;
      esac
      [ -n "$uri" ] && break
    done
  fi
  if [ -z "$uri" ]; then
    if [ "$want_security" = 1 ]; then uri=http://deb.debian.org/debian-security
    else uri=http://deb.debian.org/debian; fi
    echo "debian-mirror: no apt source for suite '${suite:-?}' found under $etc; using $uri as a last resort" >&2
  fi
  echo "${uri%/}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  xf_debian_mirror "$@"
fi
