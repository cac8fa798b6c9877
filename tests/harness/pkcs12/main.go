// Writes the PKCS#12 keystore and truststore cert-manager's issuing controller writes for a
// Certificate with spec.keystores.pkcs12, from the PEM files of its Secret, with the same
// library at the version cert-manager pins: the key with the first certificate, the rest of
// the chain and the CA certificates; and the CA certificates alone as trusted entries, both
// with the profile's encoder (cert-manager v1.21.1,
// pkg/controller/certificates/issuing/internal/keystore.go).
//
//	cert-manager-pkcs12 <profile> <secret dir>   (password in PKCS12_PASSWORD)
//
// reads tls.key, tls.crt, ca.crt and writes keystore.p12, truststore.p12 beside them.
package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"software.sslmate.com/src/go-pkcs12"
)

var profiles = map[string]*pkcs12.Encoder{
	"LegacyRC2":  pkcs12.LegacyRC2,
	"LegacyDES":  pkcs12.LegacyDES,
	"Modern2023": pkcs12.Modern2023,
	"Modern2026": pkcs12.Modern2026,
}

func blocks(path, kind string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type == kind {
			out = append(out, block.Bytes)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no %s", path, kind)
	}
	return out, nil
}

func certificates(path string) ([]*x509.Certificate, error) {
	ders, err := blocks(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, cert)
	}
	return out, nil
}

func run(profile, dir, password string) error {
	encoder, ok := profiles[profile]
	if !ok {
		return fmt.Errorf("unknown profile %q", profile)
	}
	keys, err := blocks(filepath.Join(dir, "tls.key"), "PRIVATE KEY")
	if err != nil {
		return err
	}
	key, err := x509.ParsePKCS8PrivateKey(keys[0])
	if err != nil {
		return err
	}
	chain, err := certificates(filepath.Join(dir, "tls.crt"))
	if err != nil {
		return err
	}
	cas, err := certificates(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return err
	}
	keystore, err := encoder.Encode(key, chain[0], append(chain[1:], cas...), password)
	if err != nil {
		return err
	}
	truststore, err := encoder.EncodeTrustStore(cas, password)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "keystore.p12"), keystore, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "truststore.p12"), truststore, 0o600)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: cert-manager-pkcs12 <profile> <secret dir>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Getenv("PKCS12_PASSWORD")); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-pkcs12:", err)
		os.Exit(1)
	}
}
