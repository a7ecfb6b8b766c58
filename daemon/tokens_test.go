package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestTokens(t *testing.T) {
	synctest.Test(t, testTokens)
}

func testTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	var set tokens
	if err := set.load(path); err != nil {
		t.Fatalf("empty token set: %v", err)
	}
	tok, err := IssueToken(path, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, tokenPrefix) {
		t.Errorf("token %q lacks prefix %q", tok, tokenPrefix)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), tok) {
		t.Error("token file holds the token itself, want only its hash")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	if got := set.identity(tok); got != "alice@example.org" {
		t.Errorf("identity(new token) = %q, want alice@example.org (picked up without SIGHUP)", got)
	}
	if got := set.identity(tok + "x"); got != "" {
		t.Errorf("identity(wrong token) = %q, want none", got)
	}
	n, err := RevokeTokens(path, "alice@example.org")
	if err != nil || n != 1 {
		t.Fatalf("revoke: %d, %v", n, err)
	}
	time.Sleep(tokenCheckInterval)
	if got := set.identity(tok); got != "" {
		t.Errorf("identity(revoked token) = %q, want none (picked up without SIGHUP)", got)
	}
}

// RevokeTokens takes a hash prefix of 8 hex digits or more, and no
// shorter one: 7 digits revoke nothing, even though they match.
func TestRevokeTokensByHashPrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	tok, err := IssueToken(path, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	other, err := IssueToken(path, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	hash := TokenHash(tok)
	for _, tc := range []struct {
		name, prefix string
		want         int
	}{
		{"7 digits", hash[:7], 0},
		{"8 digits of no token", strings.Repeat("x", 8), 0},
		{"8 digits", hash[:8], 1},
		{"8 digits, revoked already", hash[:8], 0},
	} {
		n, err := RevokeTokens(path, tc.prefix)
		if err != nil || n != tc.want {
			t.Errorf("%s: RevokeTokens(%q) = %d, %v; want %d", tc.name, tc.prefix, n, err, tc.want)
		}
	}
	entries, err := ReadTokens(path)
	if err != nil || len(entries) != 1 || entries[0].Hash != TokenHash(other) {
		t.Errorf("token file after the revokes = %+v, %v; want only bob's token", entries, err)
	}
}

func TestReadTokensRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(path, []byte("not a token line\n"), 0o600)
	if _, err := ReadTokens(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("ReadTokens(garbage) = %v, want an error naming line 1", err)
	}
}

func TestIssueTokenRefusesLocalIdentities(t *testing.T) {
	if _, err := IssueToken(filepath.Join(t.TempDir(), "tokens"), "uid:1000"); err == nil || !strings.Contains(err.Error(), "reserved for local callers") {
		t.Errorf("IssueToken(uid:1000) = %v, want a refusal", err)
	}
}

// Issue and revoke at the same time lose no token that was handed out.
func TestTokenWritersDoNotLoseTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	var wg sync.WaitGroup
	issued := make(chan string, 40)
	for i := range 40 {
		wg.Go(func() {
			tok, err := IssueToken(path, fmt.Sprintf("user%d@example.org", i))
			if err != nil {
				t.Error(err)
				return
			}
			issued <- tok
		})
		wg.Go(func() {
			if _, err := IssueToken(path, "doomed@example.org"); err != nil {
				t.Error(err)
			}
			if _, err := RevokeTokens(path, "doomed@example.org"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(issued)
	var set tokens
	if err := set.load(path); err != nil {
		t.Fatal(err)
	}
	for tok := range issued {
		if set.identity(tok) == "" {
			t.Errorf("token %s… lost by a concurrent revoke", tok[:10])
		}
	}
	if entries, _ := ReadTokens(path); len(entries) != 40 {
		t.Errorf("token file has %d entries, want the 40 not revoked", len(entries))
	}
	if files, _ := os.ReadDir(filepath.Dir(path)); len(files) != 2 { // tokens, tokens.lock
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Errorf("files in the token dir: %v, want the token file and its lock", names)
	}
}
