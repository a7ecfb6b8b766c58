package main

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		pos, tail []string
		wait      string
	}{
		{"flags first", []string{"--wait", "1s", "a", "b"}, []string{"a", "b"}, nil, "1s"},
		{"flags between", []string{"a", "--wait=2s", "b"}, []string{"a", "b"}, nil, "2s"},
		{"dash tail", []string{"a", "--", "cmd", "--wait", "x"}, []string{"a"}, []string{"cmd", "--wait", "x"}, ""},
		{"flag then tail", []string{"a", "--wait", "3s", "--", "-x"}, []string{"a"}, []string{"-x"}, "3s"},
		{"only tail", []string{"--", "a"}, nil, []string{"a"}, ""},
		{"none", nil, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			wait := fs.String("wait", "", "")
			pos, tail, err := parse(fs, tt.args)
			if err != nil || !reflect.DeepEqual(pos, tt.pos) || !reflect.DeepEqual(tail, tt.tail) || *wait != tt.wait {
				t.Errorf("parse(%q) = %q, %q, wait %q, %v; want %q, %q, wait %q", tt.args, pos, tail, *wait, err, tt.pos, tt.tail, tt.wait)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("a\x00--wait\x001s\x00--\x00b")
	f.Add("--\x00--\x00-wait")
	f.Fuzz(func(t *testing.T, s string) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("wait", "", "")
		fs.Bool("json", false, "")
		args := strings.Split(s, "\x00")
		pos, tail, err := parse(fs, args)
		if err == nil && len(pos)+len(tail) > len(args) {
			t.Errorf("parse(%q) returned more arguments than it got: %q %q", args, pos, tail)
		}
	})
}
