package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ServableExample returns the Python servable of docs/servable.md as it is
// written there (it answers each input upper-cased), so that the tests and
// scripts/bench.sh run the example users copy, and keep it working.
func ServableExample() ([]byte, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "docs", "servable.md")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b strings.Builder
	in := false
	for s := bufio.NewScanner(f); s.Scan(); {
		switch {
		case !in && s.Text() == "```python":
			in = true
		case in && s.Text() == "```":
			return []byte(b.String()), nil
		case in:
			b.WriteString(s.Text() + "\n")
		}
	}
	return nil, fmt.Errorf("%s has no ```python block", path)
}

// moduleRoot is the directory of go.mod above the working directory (a
// package's tests run in the package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
