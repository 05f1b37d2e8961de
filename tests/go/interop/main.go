// interop: the Go side of our interoperability tests, built from pinned
// upstream modules by scripts/lib/gotools.sh (never committed as a binary).
//
//	interop encrypt-key PASSWORD KEY_OUT PUB_OUT
//	    an ECDSA P-256 key pair as `cosign generate-key-pair` writes it:
//	    PKCS#8 encrypted with go-securesystemslib's scrypt + secretbox
//	    under the PEM type ENCRYPTED SIGSTORE PRIVATE KEY, and the SPKI
//	    public key.
//	interop registry ADDR
//	    go-containerregistry's registry, with the OCI 1.1 referrers API,
//	    serving on ADDR (a loopback host:port) until killed. One shim: its
//	    201 answers to blob and manifest uploads carry no Location header,
//	    which the distribution spec requires and oci-client (our registry
//	    client) insists on; the wrapper adds it from Docker-Content-Digest.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "encrypt-key":
		if len(os.Args) != 5 {
			usage()
		}
		check(encryptKey(os.Args[2], os.Args[3], os.Args[4]))
	case "registry":
		if len(os.Args) != 3 {
			usage()
		}
		check(serve(os.Args[2]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: interop encrypt-key PASSWORD KEY_OUT PUB_OUT | interop registry ADDR")
	os.Exit(2)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
}

func encryptKey(password, keyOut, pubOut string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	enc, err := encrypted.Encrypt(der, []byte(password))
	if err != nil {
		return err
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: enc})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	if err := os.WriteFile(keyOut, keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubOut, pubPEM, 0o644)
}

func serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening on", ln.Addr().String())
	srv := &http.Server{
		Handler:           withLocation(registry.New(registry.WithReferrersSupport(true))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return srv.Serve(ln)
}

// withLocation adds the Location header the distribution spec requires on
// a 201 answer to an upload, when the registry left it out.
func withLocation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&locationWriter{ResponseWriter: w, r: r}, r)
	})
}

type locationWriter struct {
	http.ResponseWriter
	r *http.Request
}

func (l *locationWriter) WriteHeader(code int) {
	h := l.Header()
	digest := h.Get("Docker-Content-Digest")
	if code == http.StatusCreated && h.Get("Location") == "" && digest != "" {
		path := l.r.URL.Path
		if i := strings.Index(path, "/blobs/uploads/"); i >= 0 {
			h.Set("Location", path[:i]+"/blobs/"+digest)
		} else if i := strings.Index(path, "/manifests/"); i >= 0 {
			h.Set("Location", path[:i]+"/manifests/"+digest)
		}
	}
	l.ResponseWriter.WriteHeader(code)
}
