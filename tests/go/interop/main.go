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
//	interop token-server ADDR CERT_OUT USER PASSWORD
//	    a registry token server (the distribution token-auth protocol):
//	    a fresh ECDSA P-256 issuer certificate written to CERT_OUT (the
//	    registry's rootcertbundle), and GET /token answering USER:PASSWORD
//	    (basic auth) with an ES256 JWT (x5c header) granting the scopes
//	    asked for; 401 otherwise.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
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
	case "token-server":
		if len(os.Args) != 6 {
			usage()
		}
		check(tokenServer(os.Args[2], os.Args[3], os.Args[4], os.Args[5]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: interop encrypt-key PASSWORD KEY_OUT PUB_OUT | interop registry ADDR | interop token-server ADDR CERT_OUT USER PASSWORD")
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

// Token issuer constants the registry config names too.
const (
	tokenIssuer  = "platform-capstone-test"
	tokenService = "platform-capstone-test"
)

func tokenServer(addr, certOut, user, password string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "platform-capstone test token issuer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certOut, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening on", ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var access []map[string]any
		for _, scope := range r.URL.Query()["scope"] {
			parts := strings.Split(scope, ":")
			if len(parts) < 3 {
				continue
			}
			name := strings.Join(parts[1:len(parts)-1], ":")
			access = append(access, map[string]any{
				"type": parts[0], "name": name, "actions": strings.Split(parts[len(parts)-1], ","),
			})
		}
		token, err := jwt(key, der, u, r.URL.Query().Get("service"), access)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token": token, "access_token": token, "expires_in": 300,
			"issued_at": time.Now().UTC().Format(time.RFC3339),
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// jwt signs the registry's claims (ES256, the issuer certificate in x5c).
func jwt(key *ecdsa.PrivateKey, cert []byte, sub, aud string, access []map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	header, err := json.Marshal(map[string]any{
		"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(cert)},
	})
	if err != nil {
		return "", err
	}
	now := time.Now()
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss": tokenIssuer, "sub": sub, "aud": aud,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-10 * time.Second).Unix(), "iat": now.Unix(),
		"jti": enc.EncodeToString(nonce), "access": access,
	})
	if err != nil {
		return "", err
	}
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}
