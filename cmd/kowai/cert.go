package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kowai/kowai/internal/certgen"
)

const certUsage = "cert ca [--out DIR] | cert node NAME [--ca DIR] [--host h1,h2] [--out DIR]"

// certCmd creates the certificates of the cluster's mutual TLS: a CA, then one
// certificate per node (or one shared by every node).
func certCmd(_ context.Context, args []string, io stdio, _ func(string) string) error {
	if len(args) == 0 {
		return usagef("want: kowai %s", certUsage)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintf(io.out, "usage: kowai %s\n\n"+
			"  ca    create a cluster CA (ca.crt, ca.key) in --out\n"+
			"  node  create NAME.crt and NAME.key, signed by the CA in --ca, for the hosts in --host\n\n"+
			"Certificates are ECDSA P-256; files are written mode 0600 and never overwritten.\n"+
			"Point every node at them with KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY.\n", certUsage)
		return nil
	case "ca":
		return certCA(args[1:], io)
	case "node":
		return certNode(args[1:], io)
	default:
		return usagef("unknown action %q; want: kowai %s", args[0], certUsage)
	}
}

func certCA(args []string, io stdio) error {
	fs := flagSet("cert ca", "cert ca [--out DIR]", io)
	out := fs.String("out", ".", "directory for ca.crt and ca.key (created mode 0700 when missing)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	ca, err := certgen.NewCA("kowai cluster CA", time.Now())
	if err != nil {
		return err
	}
	certFile, keyFile, err := ca.Write(*out, strings.TrimSuffix(certgen.CACertFile, ".crt"))
	if err != nil {
		return writeError("--out", err)
	}
	_, err = fmt.Fprintf(io.out, "wrote %s and %s, valid until %s\n"+
		"keep %s secret: whoever holds it can make certificates that join the cluster\n"+
		"next: kowai cert node NAME --ca %s --host HOST[,HOST...]\n",
		certFile, keyFile, ca.Cert.NotAfter.Format(time.DateOnly), keyFile, *out)
	return err
}

func certNode(args []string, io stdio) error {
	fs := flagSet("cert node", "cert node NAME [--ca DIR] [--host h1,h2] [--out DIR]", io)
	caDir := fs.String("ca", ".", "directory holding ca.crt and ca.key (kowai cert ca)")
	hosts := fs.String("host", "localhost,127.0.0.1,::1", "comma-separated host names and IP addresses the node is dialed at (its KOWAI_CLUSTER_ADDR and KOWAI_CLUSTER_MEMBERSHIP_ADDR hosts)")
	out := fs.String("out", ".", "directory for NAME.crt and NAME.key (created mode 0700 when missing)")
	// NAME may come before or after the flags (parse collects the arguments).
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want: kowai cert node NAME [--ca DIR] [--host h1,h2] [--out DIR]")
	}
	if fs.NArg() > 1 {
		return usagef("unexpected argument %q", fs.Arg(1))
	}
	name := fs.Arg(0)
	if err := certgen.CheckName(name); err != nil {
		return usagef("NAME: %s", reason(err))
	}
	var hostList []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hostList = append(hostList, h)
		}
	}
	ca, err := certgen.LoadCA(*caDir)
	if err != nil {
		return usagef("--ca %s: %v", *caDir, err)
	}
	node, err := certgen.NewNode(ca, name, hostList, time.Now())
	if errors.Is(err, certgen.ErrInvalid) {
		return usagef("--host: %s", reason(err))
	}
	if err != nil {
		return err
	}
	certFile, keyFile, err := node.Write(*out, name)
	if err != nil {
		return writeError("--out", err)
	}
	caFile := filepath.Join(*caDir, certgen.CACertFile)
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	_, err = fmt.Fprintf(io.out, "wrote %s and %s for %s (%s), valid until %s\n"+
		"KOWAI_CLUSTER_TLS_CA=%s\nKOWAI_CLUSTER_TLS_CERT=%s\nKOWAI_CLUSTER_TLS_KEY=%s\n",
		certFile, keyFile, name, strings.Join(append(node.Cert.DNSNames, ipStrings(node)...), ", "),
		node.Cert.NotAfter.Format(time.DateOnly), abs(caFile), abs(certFile), abs(keyFile))
	return err
}

func ipStrings(p *certgen.Pair) []string {
	var out []string
	for _, ip := range p.Cert.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// reason is err's message without the package's sentinel prefix.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), certgen.ErrInvalid.Error()+": ")
}

// writeError makes an existing file a usage error: the operator picks another directory.
func writeError(flag string, err error) error {
	if errors.Is(err, os.ErrExist) {
		return usagef("%s: %v", flag, err)
	}
	return err
}
