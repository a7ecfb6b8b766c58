package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	set, err := newTokenSet(path)
	if err != nil {
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
	if got := set.identity(tok); got != "alice@example.org" {
		t.Errorf("identity(token) right after revoke = %q, want it still trusted until the next look at the file", got)
	}
	set.lastCheck.Store(time.Now().Add(-tokenCheckInterval).UnixNano()) // the interval passes
	if got := set.identity(tok); got != "" {
		t.Errorf("identity(revoked token) = %q, want none (picked up without SIGHUP)", got)
	}
}

func TestReadTokensRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(path, []byte("not a token line\n"), 0o600)
	if _, err := ReadTokens(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("ReadTokens(garbage) = %v, want an error naming line 1", err)
	}
}
