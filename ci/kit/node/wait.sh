# wait.sh: the kit node's one wait, sourced by cbam-node (and by the
# harness's tests of it). The caller defines fail MESSAGE (exits) and
# hide TEXT (prints TEXT with secrets masked), and sets components to the
# directory of the supervisor's component states (may be empty).

# refusal TEXT: prints the line of TEXT that says a request was refused for
# good, and succeeds, when TEXT has one; fails otherwise. Only what no retry
# can change counts: the API server refusing the object or the request
# (400 BadRequest, 422 Invalid, 403, 401, 405, 406, 413, 415; and server-side
# apply's "failed to create typed patch object", which the API server sends
# as a 500 with no reason although the object is at fault: kubernetes
# issue 139253), and kubectl refusing its own command line or input. What can
# heal is not here and is retried: not found yet, connection refused, 409
# Conflict, 429, other 5xx, timeouts, and the 403 an admission plugin
# answers while its caches fill after a start ("not yet ready to handle
# request").
refusal() {
  ! grep -q 'not yet ready to handle request' <<<"$1" || return 1
  grep -m1 -E \
    -e '^Error from server \((BadRequest|Invalid|Forbidden|Unauthorized|MethodNotAllowed|NotAcceptable|UnsupportedMediaType|RequestEntityTooLarge)\)' \
    -e 'failed to create typed patch object' \
    -e '^error: (error validating|error parsing|unable to recognize|unknown (flag|shorthand flag|command)|the path .* does not exist)' \
    -e '^Error: unknown (flag|shorthand flag|command)' <<<"$1"
}

# until_ok NAME SECONDS COMMAND...: runs COMMAND until it succeeds. Ends at
# once when its output says it was refused for good (refusal), or when a
# component it may be waiting on crash-loops; on timeout it says the
# command's last line of output (the last state seen).
until_ok() {
  local what="$1" limit="$2"; shift 2
  local deadline=$(( $(date +%s) + limit )) looping out="" refused
  until out="$("$@" 2>&1)"; do
    if refused="$(refusal "$out")"; then
      fail "refused while waiting for $what (not retried): $(hide "$(printf '%s' "$refused" | cut -c1-400)")"
    fi
    looping="$(grep -l '^crash-looping' "${components:-/nonexistent}"/* 2>/dev/null | head -1 || true)"
    [ -z "$looping" ] || fail "${looping##*/} is crash-looping while waiting for $what: $(cut -d' ' -f5- "$looping")"
    [ "$(date +%s)" -lt "$deadline" ] ||
      fail "timed out after ${limit}s waiting for $what${out:+: $(hide "$(printf '%s' "$out" | tail -1 | cut -c1-240)")}"
    sleep 0.5
  done
}
