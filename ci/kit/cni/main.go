// cbam-cni: the pod network of the kind node image built here (issue 29),
// run as a host-network DaemonSet from /kind/manifests/default-cni.yaml.
// On its node it writes the CNI config for the node's podCIDR (ptp +
// host-local + portmap: plugins kind's base image carries, as kindnet
// configures them), keeps a route
// to every other node's podCIDR via that node's address (nodes share one
// L2 network, as kindnet and flannel's host-gw assume), and masquerades
// pod traffic leaving the pod range. The same job cbam-node's pod_routes
// does on a kit node.
//
// A static binary in a scratch image: it reads the API with its service
// account and the standard library only, and runs `ip` and `iptables`
// from the node's own filesystem (mounted at /host) in a chroot.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"
	host           = "/host"
	confDir        = "/host/etc/cni/net.d"
	confFile       = "10-cbam.conflist"
	interval       = 5 * time.Second
	// Where the node image (Debian) has them.
	ip       = "/usr/bin/ip"
	iptables = "/usr/sbin/iptables"
)

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PodCIDR string `json:"podCIDR"`
		} `json:"spec"`
		Status struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

// conflist is the node's CNI configuration, built as data.
func conflist(podCIDR string) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "cbam",
		"plugins": []any{
			map[string]any{
				"type": "ptp", "ipMasq": false,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}, "", "  ")
}

// onHost runs a program of the node's filesystem (an absolute path there:
// the lookup would happen here, before the chroot), chrooted to it.
func onHost(args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: host}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func client() (*http.Client, string, error) {
	ca, err := os.ReadFile(filepath.Join(serviceAccount, "ca.crt"))
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	endpoint := os.Getenv("CONTROL_PLANE_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("KUBERNETES_SERVICE_HOST") + ":" + os.Getenv("KUBERNETES_SERVICE_PORT")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return c, "https://" + endpoint, nil
}

func listNodes(c *http.Client, base string) (*nodeList, error) {
	token, err := os.ReadFile(filepath.Join(serviceAccount, "token"))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/nodes", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET nodes: %s", resp.Status)
	}
	var nodes nodeList
	return &nodes, json.NewDecoder(resp.Body).Decode(&nodes)
}

// writeConf writes the node's CNI config when it differs (atomically: the
// runtime reads the directory at any time).
func writeConf(podCIDR string) (bool, error) {
	want, err := conflist(podCIDR)
	if err != nil {
		return false, err
	}
	path := filepath.Join(confDir, confFile)
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want) {
		return false, nil
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return false, err
	}
	if err := os.WriteFile(path+".tmp", want, 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(path+".tmp", path)
}

func main() {
	self, podSubnet := os.Getenv("NODE_NAME"), os.Getenv("POD_SUBNET")
	if self == "" || podSubnet == "" {
		log.Fatal("cbam-cni: NODE_NAME and POD_SUBNET must be set")
	}
	c, base, err := client()
	if err != nil {
		log.Fatalf("cbam-cni: failed to read the service account: %v", err)
	}
	log.Printf("cbam-cni: node %s, pod subnet %s, API %s", self, podSubnet, base)
	for ; ; time.Sleep(interval) {
		// Pods leaving the pod range are masqueraded; pod to pod is routed.
		if onHost(iptables, "-t", "nat", "-C", "POSTROUTING", "-s", podSubnet, "!", "-d", podSubnet, "-j", "MASQUERADE") != nil {
			if err := onHost(iptables, "-t", "nat", "-A", "POSTROUTING", "-s", podSubnet, "!", "-d", podSubnet, "-j", "MASQUERADE"); err != nil {
				log.Printf("cbam-cni: failed to masquerade: %v", err)
			}
		}
		nodes, err := listNodes(c, base)
		if err != nil {
			log.Printf("cbam-cni: failed to list nodes (retrying): %v", err)
			continue
		}
		for _, n := range nodes.Items {
			cidr, address := n.Spec.PodCIDR, ""
			for _, a := range n.Status.Addresses {
				if a.Type == "InternalIP" && !strings.Contains(a.Address, ":") {
					address = a.Address
				}
			}
			switch {
			case cidr == "":
			case n.Metadata.Name == self:
				if changed, err := writeConf(cidr); err != nil {
					log.Printf("cbam-cni: failed to write the CNI config: %v", err)
				} else if changed {
					log.Printf("cbam-cni: pod CIDR %s: CNI config written", cidr)
				}
			case address != "":
				if err := onHost(ip, "route", "replace", cidr, "via", address); err != nil {
					log.Printf("cbam-cni: failed to route %s: %v", cidr, err)
				}
			}
		}
	}
}
