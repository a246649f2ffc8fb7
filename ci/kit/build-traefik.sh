#!/usr/bin/env bash
# Builds Traefik $TRAEFIK_VERSION (v3.7: the first with the NGINX provider's
# limit-rpm) from the Go module proxy. Three of its dependencies are not
# served, so the build substitutes, outside the checkout and recorded here:
#  - github.com/traefik/traefik/dynamic/ext, a nested module of Traefik's own
#    repository and empty in its open-source build (two field-less structs
#    embedded in the dynamic configuration): written below as the same.
#  - lego's DNS-01 providers whose cloud SDKs are not served: their packages
#    are removed from a copy of lego and from its provider factory. The test
#    cluster issues no ACME certificates (the harness signs its own), so no
#    code path that is exercised changes.
#  - containous/go-http-auth at the fork's earlier revision, the one Traefik
#    v3.6 pins (basic/digest auth middleware only, unused by the deployment).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../versions.env
source "$here/../versions.env"
# shellcheck source=../go-compiler.env
source "$here/../go-compiler.env"
kit="${CBAM_KIT:-$HOME/.cache/cbam-conformance/kit}"
out="$kit/traefik-$TRAEFIK_VERSION"
if [ -f "$out/.complete" ]; then echo "kit: traefik $TRAEFIK_VERSION cached"; exit 0; fi
# One at a time: build.sh resolves Traefik ahead (GO_BUILD_RESOLVE_ONLY=1,
# passed on to go-build.sh) while the compiler is busy with another part.
mkdir -p "$out"
exec 8>"$out/.build.lock"
flock 8
overrides="$out/overrides"
rm -rf "$overrides"
mkdir -p "$overrides/ext"

traefik_mod="$(go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" | jq -r .GoMod)"
lego_version="$(awk '$1 == "github.com/go-acme/lego/v5" { print $2; exit }' "$traefik_mod")"
[ -n "$lego_version" ] || { echo "kit: traefik $TRAEFIK_VERSION does not require lego/v5" >&2; exit 2; }

cat >"$overrides/ext/go.mod" <<'EOF'
module github.com/traefik/traefik/dynamic/ext

go 1.22
EOF
cat >"$overrides/ext/ext.go" <<'EOF'
// Package ext is the kit's stand-in for Traefik's dynamic configuration
// extension point, which carries no fields in the open-source build.
package ext

// HTTP is embedded in dynamic.HTTPConfiguration.
type HTTP struct{}

// Router is embedded in dynamic.Router.
type Router struct{}
EOF

lego_src="$(go mod download -json "github.com/go-acme/lego/v5@$lego_version" | jq -r .Dir)"
cp -r "$lego_src" "$overrides/lego"
chmod -R u+w "$overrides/lego"
providers="$overrides/lego/providers/dns"
for p in $TRAEFIK_LEGO_DROP_PROVIDERS; do
  [ -d "$providers/$p" ] || { echo "kit: lego $lego_version has no DNS provider $p" >&2; exit 2; }
  rm -rf "${providers:?}/$p"
done
rm -f "$providers/dns_providers_test.go"
# The factory imports every provider and maps names to constructors: drop the
# removed ones' import lines and `case` + `return` pairs; unknown names then
# get lego's own "unrecognized DNS provider" error.
awk -v drop="$TRAEFIK_LEGO_DROP_PROVIDERS" '
  BEGIN { n = split(drop, list, " "); for (i = 1; i <= n; i++) dropped[list[i]] = 1 }
  /^\t"github.com\/go-acme\/lego\/v5\/providers\/dns\/[a-z0-9]+"$/ {
    p = $0; sub(/.*\//, "", p); sub(/"$/, "", p); if (p in dropped) next }
  /^\tcase / { held = $0; next }
  held != "" { p = $0; sub(/^\t\treturn /, "", p); sub(/\..*/, "", p)
    if (!(p in dropped)) { print held; print } held = ""; next }
  { print }' "$providers/zz_gen_dns_providers.go" >"$providers/factory.tmp"
mv "$providers/factory.tmp" "$providers/zz_gen_dns_providers.go"
# The factory must still parse and name none of the removed providers.
gofmt -l "$providers/zz_gen_dns_providers.go" >/dev/null ||
  { echo "kit: the trimmed lego provider factory does not parse" >&2; exit 2; }
if grep -wE "($(tr ' ' '|' <<<"$TRAEFIK_LEGO_DROP_PROVIDERS"))\.NewDNSProvider" "$providers/zz_gen_dns_providers.go"; then
  echo "kit: the lego provider factory still names a removed provider" >&2; exit 2
fi
for m in $TRAEFIK_LEGO_DROP_MODULES; do (cd "$overrides/lego" && go mod edit -droprequire "$m"); done

GO_REPLACE="github.com/traefik/traefik/dynamic/ext=$overrides/ext github.com/go-acme/lego/v5=$overrides/lego \
github.com/abbot/go-http-auth=$TRAEFIK_GO_HTTP_AUTH" \
  LDFLAGS_EXTRA="-X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
  bash "$here/go-build.sh" traefik github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" \
  traefik=github.com/traefik/traefik/v3/cmd/traefik
