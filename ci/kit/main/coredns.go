// CoreDNS with the plugins the kit's Corefile uses (node/addons/10-coredns.yaml)
// and forward, which kubeadm's Corefile (the kind node's, issue 29) adds,
// instead of upstream's main, which compiles every plugin (core/plugin): the
// cloud DNS providers' SDKs, dnstap, tracing and the rest are not built. A
// Corefile naming a plugin missing here fails at start ("missing a plugin");
// tests/workflows.rs holds this list to the Corefile. Plugin order stays
// upstream's (dnsserver.Directives).
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
