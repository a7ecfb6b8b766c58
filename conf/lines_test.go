package conf

import (
	"reflect"
	"testing"
)

func reflectConfig() reflect.Type { return reflect.TypeFor[Config]() }

func TestKeyLines(t *testing.T) {
	text := `# comment
site.name = "a" # trailing
[endpoint]
  listen = ":1"   
"socket" = '/x'
[[auth.map]]
regex = """
not = a key
"""
account = "$1"
[[auth.map]]
match = "a=b" ; # odd but only text
account = 'b'
[auth]
min_uid = [
  1, # comment ]
  2,
]
token_file = "t"
[tenants.account."bob.smith"]
pids = 9
`
	want := map[string]int{
		"site": 2, "site.name": 2,
		"endpoint": 3, "endpoint.listen": 4, "endpoint.socket": 5,
		"auth": 6, "auth.map": 6, "auth.map[0]": 6, "auth.map[0].regex": 7, "auth.map[0].account": 10,
		"auth.map[1]": 11, "auth.map[1].match": 12, "auth.map[1].account": 13,
		"auth.min_uid": 15, "auth.token_file": 19,
		"tenants": 20, "tenants.account": 20, `tenants.account."bob.smith"`: 20, `tenants.account."bob.smith".pids`: 21,
	}
	got := keyLines(text)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines =\n%v\nwant\n%v", got, want)
	}
	src := &source{lines: got}
	for key, line := range map[string]int{
		"auth.map[1].regex": 11, "endpoint.tls_cert": 3, "limits.max_batch": 0, `tenants.account."bob.smith".cpus`: 20,
	} {
		if n := src.line(key); n != line {
			t.Errorf("line(%q) = %d, want %d", key, n, line)
		}
	}
}
